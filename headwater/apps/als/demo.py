"""The ALS demo's data and its live step: MovieLens history, then a brand-new user's events.

:func:`history_lines` is pyspark's bundled MovieLens sample as input lines; :func:`show_live_learning`
sends five events for a user no model has seen to ``<id>.input`` and polls ``/recommend`` until the
speed layer's UP messages make that user known to the serving layer, with no batch run in between.

>>> lines = history_lines()
>>> len(lines), lines[0]
(1501, 'u0,m2,3,1424380312000')
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.config import Config

# printed by the demo as a URL to try
EXAMPLE_PATH = "/recommend/u1"


def history_lines(app: str = "als") -> list[str]:
    """pyspark's bundled MovieLens sample (``user::item::rating::ts``) as ALS input lines."""
    import pyspark

    path = Path(pyspark.__file__).parent / "data" / "mllib" / "als" / "sample_movielens_ratings.txt"
    lines = []
    for row in path.read_text().splitlines():
        user, item, rating, ts = row.split("::")
        lines.append(f"u{user},m{item},{rating},{int(ts) * 1000}")
    return lines


def show_live_learning(config: Config, base: str, timeout: float = 60) -> bool:
    """Send events for a brand-new user and show its recommendations once the serving layer has them."""
    import requests

    from headwater.kafka_producer import LineProducer

    user = f"new-user-{int(time.time())}"
    liked = ["m1", "m2", "m3", "m4", "m5"]
    # the speed layer reads new records only once its query runs: give it a moment after /ready
    time.sleep(3)
    sent_at = time.monotonic()
    with LineProducer(config.kafka) as producer:
        producer.send_lines(config.input_topic, [f"{user},{item},5" for item in liked])
    print(f"\nsent 5 events for brand-new user {user} to {config.input_topic} (no batch run follows)")
    while time.monotonic() - sent_at < timeout:
        answer = requests.get(f"{base}/recommend/{user}", params={"howMany": 5},
                              headers={"Accept": "application/json"}, timeout=5)
        if answer.status_code == 200:
            print(f"recommendations for {user} after {time.monotonic() - sent_at:.1f} s:")
            for entry in answer.json():
                print(f"  {entry['id']:>6}  {entry['value']:.3f}")
            return True
        time.sleep(0.2)
    print(f"{user} not served within {timeout:.0f} s; see var/logs/speed.log", file=sys.stderr)
    return False
