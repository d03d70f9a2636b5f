"""Show a case's trace from the local Jaeger (``make run-traced``) as a tree in the terminal.

    python -m devtools.trace ZQ20261126000020 [--jaeger http://127.0.0.1:16686] [--depth 3]

Jaeger built from its Go module serves its query API but not its web UI (the UI's assets are built with
npm and embedded only in release binaries), so this is the local way to read a trace.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import httpx


def fetch_traces(jaeger: str, case_id: str) -> list[dict]:
    """Every trace in which some span carries ``gridline.case_id = case_id``."""
    found: dict[str, dict] = {}
    services = httpx.get(f"{jaeger}/api/services", timeout=10).json()["data"] or []
    for service in services:
        params = {"service": service, "tags": json.dumps({"gridline.case_id": case_id}), "limit": 20}
        for trace in httpx.get(f"{jaeger}/api/traces", params=params, timeout=10).json()["data"] or []:
            found[trace["traceID"]] = trace
    return list(found.values())


def render(trace: dict, depth: int) -> list[str]:
    """Indented lines: service, span name, duration, case/topic attributes."""
    processes = trace["processes"]
    spans = {span["spanID"]: span for span in trace["spans"]}
    children: dict[str | None, list[dict]] = defaultdict(list)
    for span in spans.values():
        parent = next(
            (ref["spanID"] for ref in span.get("references", []) if ref["refType"] == "CHILD_OF"), None
        )
        children[parent if parent in spans else None].append(span)
    start = min(span["startTime"] for span in spans.values())
    lines = [f"trace {trace['traceID']}: {len(spans)} spans"]

    def walk(parent: str | None, level: int) -> None:
        for span in sorted(children[parent], key=lambda s: s["startTime"]):
            tags = {tag["key"]: tag["value"] for tag in span.get("tags", [])}
            where = tags.get("messaging.kafka.destination.partition")
            detail = f" p{where}@{tags.get('messaging.kafka.message.offset')}" if where is not None else ""
            offset_ms, duration_ms = (span["startTime"] - start) / 1000, span["duration"] / 1000
            service = processes[span["processID"]]["serviceName"]
            timing = f"+{offset_ms:8.1f} ms {duration_ms:7.1f} ms"
            lines.append(f"{'  ' * level}{timing}  {service:<20} {span['operationName']}{detail}")
            if level + 1 < depth:
                walk(span["spanID"], level + 1)

    walk(None, 0)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("case_id")
    parser.add_argument("--jaeger", default="http://127.0.0.1:16686")
    parser.add_argument(
        "--depth", type=int, default=3, help="span levels to show (database spans are deeper)"
    )
    args = parser.parse_args()
    traces = fetch_traces(args.jaeger, args.case_id)
    if not traces:
        print(
            f"no trace mentions {args.case_id} (is `make run-traced` running, and was the case posted there?)"
        )
        return 1
    for trace in traces:
        print("\n".join(render(trace, args.depth)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
