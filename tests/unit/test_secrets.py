"""No secret lives in the repository, and every secret setting comes from the environment.

The repo may hold development-only credentials (the dev API keys, the local compose database's password,
the PII vault's development key) when they say so where they stand: the value announces it ("dev-…",
"development-…") or the line, or one of the three above it, says "development". Anything else that looks
like a credential fails here, unless it is on the reviewed list below with the reason it is harmless.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from runtime.auth import DEV_KEYS_FILE, KeyRing
from runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "routing", "sla", "notify", "projection")
_NAME = r"[\w.-]*(?:secret|password|passwd|pwd|token|api[_-]?key|private[_-]?key)[\w.-]*"
_NOT_A_VALUE = r"(?:_file|_url|_path|_env|_dir)\b"  # names whose value points at a secret, not holds one
CONFIG_FILES = (".yaml", ".yml", ".env", ".ini", ".cfg", ".toml", ".conf", ".template", ".properties")
RULES: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:(?P<value>[^\s/@'\"]+)@"),
    "secret assigned a literal": re.compile(
        rf"(?i)\b(?P<name>{_NAME})['\"]?\s*[:=]\s*(?P<q>['\"])(?P<value>[^'\"\s]{{6,}})(?P=q)"
    ),
    "key-like literal": re.compile(
        r"(?i)\b(?P<name>[\w.-]*key[\w.-]*)\s*[:=]\s*(?P<q>['\"])(?P<value>[A-Za-z0-9+/_=-]{32,})(?P=q)"
    ),
}
CONFIG_RULES: dict[str, re.Pattern[str]] = {  # unquoted values: only in configuration files
    "secret in a configuration file": re.compile(
        rf"(?i)^\s*(?:export\s+)?(?P<name>{_NAME})\s*[:=]\s*(?P<value>[^\s'\"#{{}}\[\]$]{{6,}})\s*$"
    ),
}
# Reviewed: (path, value) -> why it is no secret.
REVIEWED: dict[tuple[str, str], str] = {
    (
        "tests/integration/test_notify_delivery.py",
        "it-webhook-secret",
    ): "signs webhooks to the test's own receiver",
    (
        "tests/e2e/test_security.py",
        "not-a-key-anyone-was-given",
    ): "a deliberately invalid API key the services must refuse",
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    value: str


def _marked_for_development(value: str, lines: list[str], index: int) -> bool:
    if value.startswith("dev-") or "development" in value.lower():
        return True
    try:
        if "development" in base64.b64decode(value, validate=True).decode("utf-8", "replace").lower():
            return True
    except (binascii.Error, ValueError):
        pass
    return any("development" in line.lower() for line in lines[max(0, index - 3) : index + 1])


def scan(path: str, text: str) -> list[Finding]:
    """What in ``text`` looks like a secret and is not marked as development-only."""
    lines = text.splitlines()
    config = path.endswith(CONFIG_FILES) or Path(path).name.startswith(".env")
    rules = RULES | CONFIG_RULES if config else RULES
    findings = []
    for index, line in enumerate(lines):
        for rule, pattern in rules.items():
            for match in pattern.finditer(line):
                groups = match.groupdict()
                value = groups.get("value") or match.group(0)
                if groups.get("name") and re.search(_NOT_A_VALUE, groups["name"], re.IGNORECASE):
                    continue
                if not _marked_for_development(value, lines, index):
                    findings.append(Finding(path, index + 1, rule, value))
    return findings


def _tracked_text_files() -> list[tuple[str, str]]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: nothing is tracked")
    files = []
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = REPO / name
        if not path.is_file():  # deleted in the working tree
            continue
        try:
            files.append((name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue
    return files


def test_the_scanner_finds_each_kind_of_secret_it_looks_for_and_passes_marked_development_ones():
    # Assembled at run time, so this file holds none of them.
    samples = {
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AWS access key id": "aws_id = " + "AKIA" + "Q" * 16,
        "GitHub token": "token: " + "ghp_" + "a1" * 18,
        "Slack token": "hook = " + "xoxb-" + "1234567890-abc",
        "Google API key": "maps = " + "AIza" + "B" * 35,
        "password in a URL": "POSTGRES_URL=postgresql://app:" + "hunter2hunter2" + "@db:5432/app",
        "secret assigned a literal": 'SMS_GATEWAY_SECRET = "' + "s3cr3t-from-prod" + '"',
        "secret in a configuration file": "  smtp_password: " + "Tr0ub4dor&3",
        "key-like literal": 'SIGNING_KEY = "' + "k" * 40 + '"',
    }
    for rule, line in samples.items():
        assert rule in {f.rule for f in scan("sample.yaml", line)}, rule
    assert scan("sample.py", "password = settings.smtp_password") == []  # code, not a value
    marked = [
        'API_KEY = "dev-operator-key"',
        "secret: development-only-grid-app-secret",
        "# local development only\nurl: postgresql://gridline:gridline@postgres:5432",
        "password: ${DB_PASSWORD}",
        'api_keys_file: "/etc/gridline/api-keys.yaml"',
    ]
    assert [f for sample in marked for f in scan("sample.yaml", sample)] == []


def test_no_tracked_file_holds_a_secret_beyond_marked_local_development_ones():
    files = _tracked_text_files()
    assert len(files) > 100  # git ls-files answered
    findings = [f for name, text in files for f in scan(name, text) if (f.path, f.value) not in REVIEWED]
    assert findings == []
    found = {(f.path, f.value) for name, text in files for f in scan(name, text)}
    assert REVIEWED.keys() <= found, "reviewed entries no longer in the repo: remove them"


def test_the_development_key_file_says_so_holds_dev_keys_only_and_production_refuses_it():
    text = DEV_KEYS_FILE.read_text()
    assert re.match(r"#.*development.*ONLY", text.splitlines()[0], re.IGNORECASE)
    keys = re.findall(r"^\s*key:\s*(\S+)\s*$", text, re.MULTILINE)
    assert keys and all(key.startswith("dev-") for key in keys)
    with pytest.raises(ValueError, match="plain keys"):
        KeyRing.from_file(DEV_KEYS_FILE, allow_plain=False)


def test_a_dotenv_file_is_never_committed():
    tracked = {name for name, _ in _tracked_text_files()}
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env must be in .gitignore (settings read it)"
    assert ".env" not in tracked


# --- settings -------------------------------------------------------------------------------------------

_SECRET_FIELD = re.compile(r"secret|password|token|_keys?$")


def _settings_classes() -> list[type[ServiceSettings]]:
    classes: list[type[ServiceSettings]] = []
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.config")
        classes += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value.__module__ == module.__name__
        ]
    return classes


def _secret_fields(cls: type[BaseSettings]) -> list[str]:
    return [
        name
        for name in cls.model_fields
        if _SECRET_FIELD.search(name) and not re.search(_NOT_A_VALUE, name, re.IGNORECASE)
    ]


def _production_env(monkeypatch, cls: type[BaseSettings], tmp_path: Path) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("GRIDLINE_"):
            monkeypatch.delenv(name)
    keys = tmp_path / "keys.yaml"
    keys.write_text("clients: []\n")
    env = {"GRIDLINE_ENVIRONMENT": "production", "GRIDLINE_API_KEYS_FILE": str(keys)}
    for name in _secret_fields(cls):
        if name == "pii_vault_keys":
            env[f"GRIDLINE_{name.upper()}"] = base64.urlsafe_b64encode(b"p" * 32).decode()
        else:
            env[f"GRIDLINE_{name.upper()}"] = f"from-the-environment-{name}"
    return env


def test_the_settings_secrets_are_found_where_they_are_expected():
    found = {(cls.__name__, name) for cls in _settings_classes() for name in _secret_fields(cls)}
    assert {
        ("IntakeSettings", "citizen_ref_secret"),
        ("IntakeSettings", "pii_vault_keys"),
        ("NotifySettings", "notify_sms_gateway_key"),
        ("NotifySettings", "notify_intake_api_key"),
        ("NotifySettings", "notify_smtp_password"),
    } <= found
    assert {cls.model_config.get("env_prefix") for cls in _settings_classes()} == {"GRIDLINE_"}


@pytest.mark.parametrize("cls", _settings_classes(), ids=lambda cls: cls.__name__)
def test_secret_settings_default_to_nothing_or_to_a_development_value_production_refuses(
    cls, monkeypatch, tmp_path
):
    env = _production_env(monkeypatch, cls, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = cls()  # every secret from the environment: production starts
    for name in _secret_fields(cls):
        assert getattr(settings, name) == env[f"GRIDLINE_{name.upper()}"]

    for name in _secret_fields(cls):
        default = cls.model_fields[name].default
        if default is None:
            continue  # nothing in the repo; optional in production (e.g. SMTP without AUTH)
        assert _marked_for_development(str(default), [], 0), f"{cls.__name__}.{name} default looks real"
        monkeypatch.delenv(f"GRIDLINE_{name.upper()}")
        with pytest.raises(ValueError, match=f"GRIDLINE_{name.upper()}"):
            cls()
        monkeypatch.setenv(f"GRIDLINE_{name.upper()}", env[f"GRIDLINE_{name.upper()}"])
