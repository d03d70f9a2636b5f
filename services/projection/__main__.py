"""``python -m services.projection`` serves; ``... rebuild`` rebuilds the read models; ``... checksum`` prints
the read models' checksums."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from runtime.service import serve
from services.projection.bootstrap import MIGRATIONS, build_app
from services.projection.config import ProjectionSettings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.projection")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the query API and run the projector (the default)")
    rebuild = commands.add_parser("rebuild", help="rebuild every read model from offset 0, then swap it in")
    rebuild.add_argument("--batch-size", type=int, default=5000, help="events folded per transaction")
    rebuild.add_argument(
        "--cached-cases",
        type=int,
        default=100_000,
        help="case summaries the first pass keeps in memory (about 4 KB each) before writing the oldest",
    )
    rebuild.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of the first pass, each folding its share of the partitions (default: one per core)",
    )
    rebuild.add_argument(
        "--no-switch", action="store_true", help="build and checksum, but keep serving the old"
    )
    rebuild.add_argument("--keep-retired", action="store_true", help="keep the replaced schema (not dropped)")
    rebuild.add_argument(
        "--verify",
        action="store_true",
        help="compare both schemas' checksums before the switch (the live consumer waits meanwhile)",
    )
    commands.add_parser("checksum", help="print a checksum per read-model table of the live schema")
    args = parser.parse_args(argv)
    settings = ProjectionSettings()
    if args.command == "rebuild":
        from runtime import migrations
        from services.projection.rebuild import rebuild as run_rebuild

        migrations.upgrade(MIGRATIONS, settings.database_url)
        report = asyncio.run(
            run_rebuild(
                settings,
                batch_size=args.batch_size,
                cached_cases=args.cached_cases,
                workers=args.workers,
                switch=not args.no_switch,
                keep_retired=args.keep_retired,
                verify=args.verify,
            )
        )
        print(
            f"rebuilt {report.events} events in {report.seconds:.1f}s "
            f"({report.events_per_second:,.0f} events/s) into {report.schema}; "
            f"dead-lettered {report.dead_lettered}; steps {report.phases}; first pass in "
            f"{report.processes or 1} process(es), peak {report.peak_rss_mb} MB each"
        )
        if report.identical is None and not args.no_switch:
            print("  checksums not compared (--verify compares them before the switch)")
        for table, value in report.rebuilt_checksums.items():
            live = report.live_checksums.get(table, "-")
            print(f"  {table}: rebuilt {value}  live {live}  {'same' if value == live else 'DIFFERENT'}")
        return 0
    if args.command == "checksum":
        from services.projection.rebuild import live_checksums

        for table, value in asyncio.run(live_checksums(settings)).items():
            print(f"{table}\t{value}")
        return 0
    serve(settings, build_app, MIGRATIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
