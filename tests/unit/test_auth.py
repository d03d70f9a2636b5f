from __future__ import annotations

import hashlib

import pytest

from runtime.auth import DEV_KEYS_FILE, ClientKey, KeyRing


def test_a_key_resolves_to_its_client_and_scopes_and_a_wrong_key_to_nobody():
    ring = KeyRing([ClientKey(client_id="dept", key="s3cret", scopes=["department:CGJ"])])
    principal = ring.authenticate("s3cret")
    assert principal is not None and principal.client_id == "dept"
    assert principal.departments == {"CGJ"}
    assert ring.authenticate("s3cret ") is None
    assert ring.authenticate(None) is None


def test_production_key_files_hold_digests_only(tmp_path):
    digest = hashlib.sha256(b"prod-key").hexdigest()
    good = tmp_path / "keys.yaml"
    good.write_text(f"clients:\n  - client_id: hotline\n    key_sha256: {digest}\n    scopes: [hotline]\n")
    assert KeyRing.from_file(good, allow_plain=False).authenticate("prod-key").client_id == "hotline"
    with pytest.raises(ValueError, match="plain keys"):
        KeyRing.from_file(DEV_KEYS_FILE, allow_plain=False)
