"""Entry point of the batch layer for ``spark-submit`` and ``python -m batch_layer``.

    spark-submit batch_layer/__main__.py ingest --conf conf/als.conf [--once] [-D key=value ...]
    spark-submit batch_layer/__main__.py batch --conf conf/als.conf [--once]

``ingest`` is ``headwater ingest-stream`` and ``batch`` is ``headwater batch``: one parser, in the CLI.
On a cluster, ship headwater to the executors (``--py-files`` with a zip of the packages, or an
environment that has it installed): the parsing step runs there.
"""
import sys

from headwater.cli import main

JOBS = {"ingest": "ingest-stream", "batch": "batch"}

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in JOBS:
        sys.exit(f"usage: batch_layer/__main__.py {{{'|'.join(JOBS)}}} --conf FILE [options]")
    sys.exit(main([JOBS[args[0]], *args[1:]]))
