"""The ALS demo on real MovieLens ratings: history into the batch model, then the newest ratings live.

:func:`history_lines` is the oldest 80 % of MovieLens by time (:mod:`headwater.apps.als.movielens`), which
the demo driver ingests and trains the champion on. :func:`show_live_learning` replays the newest 20 %
through ``<id>.input`` in chunks of 1,000 at a speed-up (years of ratings in about a minute), and after
each chunk prints the serving layer's live (prequential) figures: every rating was scored by the speed
layer *before* it learned it, by the live model (batch + speed) and by the champion alone. Then a
brand-new user rates five films and gets recommendations with titles, with no batch run in between.

>>> len(history_lines()), history_lines()[0]                # doctest: +SKIP
(80003, 'u383,m21,3.0,789652009000')
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from headwater.apps.als import movielens

if TYPE_CHECKING:
    from headwater.config import Config

# printed by the demo as a URL to try
EXAMPLE_PATH = "/recommend/u15?howMany=5"
CHUNK = 1000
# Star Wars IV and V and The Matrix loved, Toy Story and Titanic not
NEW_USER_RATINGS = {"m260": 5.0, "m1196": 5.0, "m2571": 5.0, "m1": 2.0, "m1721": 1.0}


def history_lines(app: str = "als") -> list[str]:
    """The oldest 80 % of the MovieLens ratings as ALS input lines ``user,item,rating,time_ms``."""
    return movielens.as_lines(movielens.time_split(movielens.load())[0])


def show_live_learning(config: Config, base: str, timeout: float = 120) -> bool:
    """Replay the newest ratings through Kafka, printing the live figures; then a new user's recommendations."""
    from headwater.kafka_producer import LineProducer

    ratings = movielens.load()
    replay = movielens.time_split(ratings)[1]
    titles = movielens.titles(ratings)
    # the speed layer reads new records only once its query runs: give it a moment after /ready
    time.sleep(3)
    print(f"\nreplaying the newest {len(replay):,} ratings ({_day(replay.time_ms.iloc[0])} to "
          f"{_day(replay.time_ms.iloc[-1])}) through {config.input_topic}, {CHUNK:,} at a time; each one is "
          "scored before the speed layer learns it")
    with LineProducer(config.kafka) as producer:
        for start in range(0, len(replay), CHUNK):
            chunk = replay.iloc[start:start + CHUNK]
            producer.send_lines(config.input_topic, movielens.as_lines(chunk))
            producer.flush()
            figures = _wait_for_events(base, start + len(chunk), timeout)
            if figures is None:
                print(f"the speed layer did not score the replay within {timeout:.0f} s; see var/logs/speed.log",
                      file=sys.stderr)
                return False
            if (start // CHUNK) % 4 == 3 or start + CHUNK >= len(replay):
                print(f"  up to {_day(chunk.time_ms.iloc[-1])}: {describe(*figures)}")
        return _new_user(config, base, producer, titles, timeout)


def describe(events: int, figures: dict[str, dict[str, float]]) -> str:
    """One line of live figures: RMSE (MAE) or hit rate@10 of batch + speed and of the champion alone."""
    def one(model: str) -> str:
        values = figures.get(model, {})
        if "rmse" in values:
            return f"RMSE {values['rmse']:.3f} (MAE {values.get('mae', float('nan')):.3f})"
        return ", ".join(f"{name} {value:.3f}" for name, value in values.items()) or "-"

    return f"{events:,} events, batch + speed {one('live')} · champion alone {one('champion')}"


def _wait_for_events(base: str, events: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = live_figures(base)
        if figures[0] >= events:
            return figures
        time.sleep(0.2)
    return None


def live_figures(base: str) -> tuple[int, dict[str, dict[str, float]]]:
    """(events scored, figures per model) from the serving layer's ``/metrics``."""
    import requests

    from headwater.prequential import from_metrics_text

    return from_metrics_text(requests.get(f"{base}/metrics", timeout=5).text)


def _new_user(config: Config, base: str, producer, titles: dict[str, str], timeout: float) -> bool:
    import requests

    user = f"new-user-{int(time.time())}"
    now = int(time.time() * 1000)
    producer.send_lines(config.input_topic,
                        [f"{user},{item},{rating},{now}" for item, rating in NEW_USER_RATINGS.items()])
    producer.flush()
    sent_at = time.monotonic()
    rated = "; ".join(f"{titles.get(i, i)} {r:g}★" for i, r in NEW_USER_RATINGS.items())
    print(f"\nbrand-new user {user} rates: {rated}")
    while time.monotonic() - sent_at < timeout:
        answer = requests.get(f"{base}/recommend/{user}", params={"howMany": 8},
                              headers={"Accept": "application/json"}, timeout=5)
        if answer.status_code == 200:
            print(f"recommendations for {user} after {time.monotonic() - sent_at:.1f} s (estimated rating, title):")
            for entry in answer.json():
                print(f"  {entry['value']:4.2f}  {titles.get(entry['id'], entry['id'])}")
            return True
        time.sleep(0.2)
    print(f"{user} not served within {timeout:.0f} s; see var/logs/speed.log", file=sys.stderr)
    return False


def _day(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time_ms / 1000))


__all__ = ["EXAMPLE_PATH", "describe", "history_lines", "live_figures", "show_live_learning"]
