"""Generate JSON Schemas and the AsyncAPI document from the event models.

``python -m contracts.generate`` writes them; ``--check`` exits 1 if the checked-in files are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from contracts.events import EVENT_TYPES
from runtime.settings import CASE_EVENTS_TOPIC

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "schemas"
ASYNCAPI = HERE / "asyncapi.yaml"

CE_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binary mode attributes, plus W3C trace context.",
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Unique event id (UUID); consumers deduplicate on it."},
        "ce_source": {"type": "string", "description": "/gridline/<service>"},
        "ce_type": {"type": "string"},
        "ce_subject": {"type": "string", "description": "The case id (also the Kafka key)."},
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context."},
    },
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"],
}


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    messages: dict[str, Any] = {}
    for type_name, cls in sorted(EVENT_TYPES.items()):
        schema = cls.model_json_schema()
        schema["$id"] = f"https://gridline.example/schemas/{type_name}.json"
        schema["x-cloudevents-type"] = type_name
        schema["x-producer"] = cls.producer
        files[SCHEMA_DIR / f"{type_name}.json"] = json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
        messages[cls.__name__] = {
            "name": type_name,
            "title": cls.__name__,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"./schemas/{type_name}.json"},
            "x-producer": cls.producer,
        }
    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Gridline case events",
            "version": "1.0.0",
            "description": (
                "Every fact about every case, one log. Key = case id (per-case order). "
                "Consumers ignore unknown fields; evolution is additive; breaking changes get a new version."
            ),
        },
        "channels": {
            "caseEvents": {
                "address": CASE_EVENTS_TOPIC,
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {"kafka": {"partitions": 6, "topicConfiguration": {"retention.ms": -1}}},
            },
            "caseEventsDeadLetter": {
                "address": f"{CASE_EVENTS_TOPIC}.dlq",
                "description": (
                    "Records a consumer could not process, unchanged, with headers dlq_reason, dlq_error, "
                    "dlq_consumer, dlq_source_topic, dlq_source_partition, dlq_source_offset."
                ),
            },
        },
        "operations": {
            f"publish{name}": {
                "action": "send",
                "channel": {"$ref": "#/channels/caseEvents"},
                "messages": [{"$ref": f"#/channels/caseEvents/messages/{name}"}],
                "x-producer": msg["x-producer"],
            }
            for name, msg in messages.items()
        },
        "components": {"messages": messages},
    }
    files[ASYNCAPI] = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    return files


def stale_files() -> list[Path]:
    """Generated files whose checked-in content differs from what the models produce."""
    expected = render()
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    on_disk = set(SCHEMA_DIR.glob("*.json"))
    stale += sorted(on_disk - set(expected))
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated files are out of date")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(HERE.parent)}", file=sys.stderr)
        if stale:
            print("run `make contracts` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path in set(SCHEMA_DIR.glob("*.json")) - set(render()):
        path.unlink()
    for path, text in render().items():
        path.write_text(text)
    print(f"wrote {len(render())} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
