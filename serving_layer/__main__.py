"""``python -m serving_layer --conf FILE [-D key=value ...]``: the same as ``headwater serve``."""
import sys

from headwater.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
