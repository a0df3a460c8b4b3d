"""The ``headwater`` command: one sub-command per job, each loading the same layered config.

Every layer's module is imported only by the sub-command that runs it, so ``headwater stack up``
never starts Spark and ``headwater serve`` never imports pyspark.
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from headwater.apps import available_apps
from headwater.config import Config, ConfigError, load_config, overrides_from_environment
from headwater.embedded import StackError
from headwater.promotion import OperatorError

log = logging.getLogger("headwater")



def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", metavar="FILE", help="HOCON config file (defaults from conf/reference.conf)")
    common.add_argument("-D", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. -D headwater.serving.port=8081")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="headwater", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", parents=[common], help="embedded Kafka broker + MLflow server")
    stack.add_argument("action", choices=("up", "down", "status"))

    ingest = sub.add_parser("ingest", parents=[common], help="send a file's lines to <id>.input")
    ingest.add_argument("file", help="text file, one event per line (.gz is read compressed)")

    stream = sub.add_parser("ingest-stream", parents=[common], help="Kafka <id>.input -> Delta events")
    stream.add_argument("--once", action="store_true", help="drain what is on the topic, then exit")

    batch = sub.add_parser("batch", parents=[common], help="train, evaluate, register and publish models")
    batch.add_argument("--once", action="store_true", help="one generation, then exit")

    sub.add_parser("maintain", parents=[common],
                   help="compact and vacuum the events and rejected tables (keeps registered models' data)")
    sub.add_parser("speed", parents=[common], help="fold live events into the model, publish updates")
    sub.add_parser("serve", parents=[common], help="REST serving layer")

    promote = sub.add_parser("promote", parents=[common], help="move an alias (champion) to a registered version")
    promote.add_argument("--version", type=int, required=True, help="the registered model version")
    promote.add_argument("--alias", default="champion", help="champion (default) or challenger")
    promote.add_argument("--reason", default="headwater promote", help="recorded in the alias history")
    rollback = sub.add_parser("rollback", parents=[common], help="move champion back to the version it replaced")
    rollback.add_argument("--reason", default="headwater rollback", help="recorded in the alias history")
    history = sub.add_parser("history", parents=[common], help="which version held each alias when, and why")
    history.add_argument("--json", action="store_true", help="as JSON")

    score = sub.add_parser("score", parents=[common], help="score a table with one model version (Spark)")
    score.add_argument("--input", required=True, metavar="PATH", help="Delta table, Parquet, or .csv with a header")
    score.add_argument("--output", required=True, metavar="PATH", help="Delta table, or .parquet / .csv")
    chosen = score.add_mutually_exclusive_group()
    chosen.add_argument("--version", type=int, help="a registered version")
    chosen.add_argument("--alias", help="an alias, resolved to one version before the job (default champion)")
    score.add_argument("--format", choices=("delta", "parquet", "csv"), help="output format (default: by name)")
    score.add_argument("--how-many", type=int, help="ALS: recommendations per user (default 10)")

    oryx = sub.add_parser("oryx-conf", help="print an Oryx 2 config (oryx.*) as the equivalent headwater config")
    oryx.add_argument("file", help="the Oryx 2 HOCON config file")

    demo = sub.add_parser("demo", parents=[common], help="the end-to-end demo run by `make run`")
    demo.add_argument("--app", default="als", help="an app with a demo: " + ", ".join(sorted(available_apps())))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("kafka", "py4j", "urllib3", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "oryx-conf":
            from headwater.cli.oryx_conf import read_oryx_config, translate

            print(translate(read_oryx_config(args.file)).text(), end="")
            return 0
        overrides = [*overrides_from_environment(), *args.overrides]
        if args.command == "demo":
            from headwater.cli.demo import run_demo

            return run_demo(args.app, args.conf, overrides)
        config = load_config(args.conf, overrides)
        return COMMANDS[args.command](config, args)
    except (ConfigError, StackError, OperatorError) as exc:
        print(f"headwater: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _stack(config: Config, args) -> int:
    from headwater.stack import Stack

    stack = Stack(config)
    if args.action == "up":
        started = stack.up()
        print(f"stack up ({', '.join(started) or 'already running'}): Kafka at {stack.bootstrap_servers}, "
              f"MLflow UI at {stack.mlflow_url}, topics {config.input_topic} and {config.update_topic}")
    elif args.action == "down":
        stopped = stack.down()
        print("stopped " + (", ".join(stopped) if stopped else "nothing (no process started by 'stack up')"))
    else:
        for status in stack.status():
            print(status.describe())
    return 0


def read_lines(path: str) -> Iterator[str]:
    """Lines of a text file, gzip-compressed when the name ends in .gz; blank lines skipped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                yield line


def _ingest(config: Config, args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from headwater.kafka_producer import LineProducer

    path = Path(args.file)
    if not path.is_file():
        print(f"headwater: {path} does not exist", file=sys.stderr)
        return 2
    total = sum(1 for _ in read_lines(args.file))
    sent = 0
    columns = (TextColumn("sending to " + config.input_topic), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with LineProducer(config.kafka) as producer, \
            Progress(*columns, transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("ingest", total=total)
        for line in read_lines(args.file):
            producer.send_line(config.input_topic, line)
            sent += 1
            if sent % 5000 == 0:
                progress.update(task, completed=sent)
        producer.flush()
        progress.update(task, completed=sent)
    print(f"sent {sent} lines from {path} to {config.input_topic}")
    return 0


def _ingest_stream(config: Config, args) -> int:
    from batch_layer.ingest import run_ingest

    run_ingest(config, once=args.once)
    return 0


def _batch(config: Config, args) -> int:
    from batch_layer.runner import run_batch_forever, run_batch_once

    if args.once:
        run_batch_once(config)
    else:
        run_batch_forever(config)
    return 0


def _maintain(config: Config, args) -> int:
    from headwater.table_maintenance import maintain_tables

    print(json.dumps(maintain_tables(config)))
    return 0


def _speed(config: Config, args) -> int:
    from speed_layer.supervisor import run_speed

    run_speed(config)
    return 0


def _serve(config: Config, args) -> int:
    from serving_layer.app import serve

    serve(config)
    return 0


def _promote(config: Config, args) -> int:
    from headwater import promotion

    promotion.move_alias(config, args.alias, args.version, promotion.CAUSE_OPERATOR, args.reason)
    print(f"{args.alias} of {config.app_id} is now version {args.version}")
    return 0


def _rollback(config: Config, args) -> int:
    from headwater import promotion

    version = promotion.rollback(config, reason=args.reason)
    print(f"champion of {config.app_id} is back at version {version}")
    return 0


def _history(config: Config, args) -> int:
    from headwater import promotion

    if args.json:
        print(promotion.history_json(config))
        return 0
    moves = promotion.history(config)
    for move in moves:
        print(promotion.describe_move(move))
    if not moves:
        print(f"no alias moves recorded for {config.app_id}")
    return 0


def _score(config: Config, args) -> int:
    from headwater.batch_scoring import score

    result = score(config, args.input, args.output, args.version, args.alias, args.format, args.how_many)
    print(f"scored {result.rows} rows with version {result.version} into {result.output}")
    return 0


COMMANDS = {"stack": _stack, "ingest": _ingest, "ingest-stream": _ingest_stream, "batch": _batch,
            "maintain": _maintain, "speed": _speed, "serve": _serve, "promote": _promote, "rollback": _rollback,
            "history": _history, "score": _score}
