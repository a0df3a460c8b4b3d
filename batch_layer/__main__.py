"""Entry point of the batch layer, for ``spark-submit`` and ``python -m batch_layer``.

    spark-submit batch_layer/__main__.py ingest --conf conf/als.conf [--once] [-D key=value ...]

On a cluster, ship headwater to the executors (``--py-files`` with a zip of the packages, or an
environment that has it installed): the parsing step runs there.
"""
from __future__ import annotations

import argparse
import logging
import sys

from headwater.config import ConfigError, load_config


def _ingest(config, args) -> int:
    from batch_layer.ingest import run_ingest

    run_ingest(config, once=args.once)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batch_layer", description="headwater batch layer jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="Kafka <id>.input -> Delta events and rejected, exactly once")
    ingest.add_argument("--once", action="store_true", help="ingest what the topic holds now, then exit")
    ingest.set_defaults(run=_ingest)
    for command in commands.choices.values():
        command.add_argument("--conf", required=True, help="HOCON config file")
        command.add_argument("-D", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                             help="override a config key (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "py4j"):  # connection-level INFO lines would drown the per-batch ones
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        config = load_config(args.conf, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return args.run(config, args)


if __name__ == "__main__":
    sys.exit(main())
