"""Entry point of the speed layer for ``spark-submit`` and ``python -m speed_layer``; same as ``headwater speed``.

    spark-submit speed_layer/__main__.py --conf conf/als.conf [-D key=value ...]
"""
import sys

from headwater.cli import main

if __name__ == "__main__":
    sys.exit(main(["speed", *sys.argv[1:]]))
