"""An example department system: read a department's dispatch topic and (optionally) accept its cases.

    python -m devtools.dept_consumer CGJ                      # print CGJ's work items as they arrive
    python -m devtools.dept_consumer CGJ --accept             # ... and accept each new assignment
    python -m devtools.dept_consumer ZJJ --from-beginning --max 5 --json

A plain aiokafka consumer, nothing from Gridline's own code, to show the contract in docs/routing.md:
the topic is ``gridline.dispatch.<code in lower case>``, values are JSON work items, headers are
CloudEvents (``ce_type`` = ``gridline.dispatch.work-item.v1``). Offsets are committed after each item is
handled, and the accept call carries the work item id as its Idempotency-Key, so a crash and restart
repeats nothing harmful.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx
from aiokafka import AIOKafkaConsumer

WORK_ITEM_TYPE = b"gridline.dispatch.work-item.v1"


def describe(item: dict) -> str:
    category = (
        (item.get("category") or {}).get("name") or (item.get("category") or {}).get("code") or "未分类"
    )
    line = f"[{item['action']}] {item['case_id']} ({item['role']}, 第{item['attempt']}次派单) {category}"
    if item.get("address"):
        line += f" @ {item['address']}"
    if item.get("recall_reason"):
        line += f" — 撤回：{item['recall_reason']}"
    elif item.get("basis", {}).get("reason"):
        line += f"\n    派单依据：{item['basis']['reason']}"
    if item.get("description"):
        line += f"\n    诉求：{item['description']}"
    return line


async def run(args: argparse.Namespace) -> int:
    topic = f"gridline.dispatch.{args.department.lower()}{args.topic_suffix}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group or f"dept-{args.department.lower()}-example",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    await consumer.start()
    seen = 0
    print(f"reading {topic} at {args.bootstrap} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        async with httpx.AsyncClient(
            base_url=args.gateway, headers={"X-API-Key": args.key}, timeout=10
        ) as http:
            async for record in consumer:
                if dict(record.headers or ()).get("ce_type") != WORK_ITEM_TYPE:
                    continue  # not a work item (a newer type this example does not know)
                item = json.loads(record.value)
                print(json.dumps(item, ensure_ascii=False) if args.json else describe(item), flush=True)
                if args.accept and item["action"] == "assigned" and item["role"] == "primary":
                    response = await http.post(
                        f"/v1/cases/{item['case_id']}/accept",
                        headers={"Idempotency-Key": item["work_item_id"]},
                    )
                    print(
                        f"    accept → {response.status_code} {response.json().get('status', '')}", flush=True
                    )
                await consumer.commit()
                seen += 1
                if args.max and seen >= args.max:
                    break
    finally:
        await consumer.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("department", help="department code, e.g. CGJ")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--group", help="consumer group (default dept-<code>-example)")
    parser.add_argument("--topic-suffix", default="", help="suffix of isolated test topics")
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest item, not the newest"
    )
    parser.add_argument("--max", type=int, default=0, help="stop after this many items (0 = never)")
    parser.add_argument("--json", action="store_true", help="print the raw work items")
    parser.add_argument("--accept", action="store_true", help="accept (签收) each new assignment")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080", help="Gridline's gateway, for --accept")
    parser.add_argument("--key", default=None, help="the department's API key (default dev-dept-<code>-key)")
    args = parser.parse_args(argv)
    args.key = args.key or f"dev-dept-{args.department.lower()}-key"
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
