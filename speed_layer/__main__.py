"""Entry point of the speed layer, for ``spark-submit`` and ``python -m speed_layer``.

    spark-submit speed_layer/__main__.py --conf conf/als.conf [-D key=value ...]

Runs until interrupted: micro-batches of ``<id>.input`` are folded into the registry's champion
and published as UP messages on ``<id>.update``; snapshots are registered with alias ``speed``.
"""
from __future__ import annotations

import argparse
import logging
import sys

from headwater.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speed_layer", description="headwater speed layer")
    parser.add_argument("--conf", required=True, help="HOCON config file")
    parser.add_argument("-D", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO: one line per significant event is ours to write
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        config = load_config(args.conf, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from speed_layer.runner import run_speed

    run_speed(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
