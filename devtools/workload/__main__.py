"""``python -m devtools.workload``: print submissions of a stream as JSON lines (to look at, or to feed)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime

from devtools.workload import CST, Workload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.workload", description=__doc__)
    parser.add_argument("--count", type=int, default=10, help="how many submissions")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--start", type=datetime.fromisoformat, help="simulated start (ISO; default 2026-01-05)"
    )
    parser.add_argument("--run", help="run tag inside order and report numbers (default w<seed>)")
    args = parser.parse_args(argv)
    start = args.start.replace(tzinfo=args.start.tzinfo or CST) if args.start else None
    for submission in Workload(seed=args.seed, start=start, run=args.run).take(args.count):
        line = dataclasses.asdict(submission) | {"at": submission.at.isoformat(), "path": submission.path}
        print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
