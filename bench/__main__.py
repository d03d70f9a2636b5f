"""``make bench``: run each bench/<name>.py that has ``main()`` (or only those named as arguments).

Options after ``--`` go to the named benchmarks: ``python -m bench e2e -- --replay 3000``."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    args = sys.argv[1:]
    options = args[args.index("--") + 1 :] if "--" in args else []
    wanted = set(args[: args.index("--")] if "--" in args else args)
    names = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    failed = []
    for name in names:
        if wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"\n=== bench/{name}.py ===", flush=True)
        try:
            module.main(options)  # each benchmark's defaults unless options are given
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            print(f"bench/{name}.py failed: {type(exc).__name__}: {exc}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
