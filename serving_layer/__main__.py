"""``python -m serving_layer --conf FILE [-D key=value ...]``: the same as ``headwater serve``."""
from __future__ import annotations

import argparse

from headwater.config import load_config
from serving_layer.app import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving_layer", description="headwater serving layer")
    parser.add_argument("--conf", help="HOCON config file")
    parser.add_argument("-D", dest="overrides", action="append", default=[], help="key=value override")
    args = parser.parse_args(argv)
    serve(load_config(args.conf, args.overrides))


if __name__ == "__main__":
    main()
