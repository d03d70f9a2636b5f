"""``python -m services.routing`` serves; ``python -m services.routing load-refdata`` loads the rule set.

Serving applies the migrations and, when no rule set is loaded yet, loads the data files first, so a
fresh ``make run`` routes from the first case on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from runtime import migrations
from runtime.logging import configure_logging
from runtime.service import serve
from services.routing.bootstrap import MIGRATIONS, build_app, load_reference_data
from services.routing.config import RoutingSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.routing", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser(
        "load-refdata", help="load services/routing/data (or --data) as a new rule-set version"
    )
    load.add_argument("--data", type=Path, help="reference data folder (default: the shipped one)")
    load.add_argument("--actor", help="who is loading, for the audit (default: cli:<user>)")
    sub.add_parser("serve", help="run the service (the default)")
    args = parser.parse_args(argv)
    settings = RoutingSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    if args.command == "load-refdata":
        if args.data:
            settings = settings.model_copy(update={"refdata_dir": args.data})
        migrations.upgrade(MIGRATIONS, settings.database_url)
        result = asyncio.run(load_reference_data(settings, actor=args.actor))
        assert result is not None
        print(json.dumps({"version": result.version, "created": result.created, "changes": result.changes},
                         ensure_ascii=False, indent=2))  # fmt: skip
        return 0
    if settings.run_migrations_on_start:
        migrations.upgrade(MIGRATIONS, settings.database_url)
    if settings.load_refdata_on_start:
        asyncio.run(load_reference_data(settings, actor="service-start", only_if_empty=True))
    serve(settings, build_app, MIGRATIONS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
