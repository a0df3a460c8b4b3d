"""Top-N items of a factor table for a query vector: exact in shared passes, or approximate for large catalogues.

Every top-N request of the ALS endpoints comes here. Exact scoring goes through
:class:`~serving_layer.score_groups.ScoreGroups` (concurrent requests share one pass over the
item matrix); once the :mod:`approximate index <serving_layer.ann_index>` of a large table is built
(in the background, after the model loaded), dot-product queries take its candidates instead and
re-rank them exactly, so returned scores are always exact scores. Both paths apply the same
steps to scores: cosine (similarity), an additive per-item term (e.g. item biases), the rescorer
(a plain function of ``(ids, scores)``, per item: the exact pass calls it block by block; NaN
filters an item out), known-item exclusion and the top-N.

>>> from serving_layer.vector_store import FactorTable
>>> table = FactorTable(["a", "b", "c"], np.array([[0.9, 0.0], [0.1, 0.0], [0.5, 0.5]]))
>>> ranker = ItemRanker(table)
>>> ranker.top_n(np.array([1.0, 0.0]), 2, exclude=table.rows(["a"]))
[('c', 0.5), ('b', 0.10000000149011612)]
>>> ranker.top_n(np.array([1.0, 0.0]), 1, item_terms=np.array([0.0, 1.0, 0.0]))
[('b', 1.100000023841858)]
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serving_layer.ann_index import ANNSettings, ApproximateIndex
from serving_layer.score_groups import ScoreGroups
from serving_layer.vector_store import FactorTable, TableView, top_indices

Rescorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RankingSettings:
    """``headwater.serving.scoring.*`` and ``headwater.serving.ann.*``."""

    group_max_queries: int = 8
    group_wait_ms: float = 1.0
    ann: ANNSettings = ANNSettings()

    @classmethod
    def from_config(cls, config) -> RankingSettings:
        if config is None:
            return cls()
        scoring = config.section("headwater.serving.scoring")
        return cls(scoring["group-max-queries"], scoring["group-wait-ms"], ANNSettings.from_config(config))


class ItemRanker:
    """The best items of ``table`` for a query; ``item_terms`` (if given) returns a per-row additive term."""

    def __init__(self, table: FactorTable, settings: RankingSettings | None = None,
                 item_terms: Callable[[], np.ndarray | None] | None = None):
        self.settings = settings or RankingSettings()
        self.table = table
        self._groups = ScoreGroups(self.settings.group_max_queries, self.settings.group_wait_ms / 1000)
        self._item_terms = item_terms
        self.approximate = ApproximateIndex.for_table(table, self.settings.ann, item_terms)

    def top_n(self, query, how_many: int, exclude: np.ndarray | None = None, cosine: bool = False,
              rescorer: Rescorer | None = None, item_terms: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The ``how_many`` best items by dot product (+ item term) or by cosine, best first."""
        query = np.asarray(query, dtype=np.float32)
        view = self.table.view
        # the approximate index knows the ranker's own item terms, not a caller's
        approximate = not cosine and item_terms is None and self.approximate is not None and self.approximate.ready
        if item_terms is None and self._item_terms is not None and not cosine:
            item_terms = self._item_terms()
        excluded = 0 if exclude is None else len(exclude)
        if approximate:
            rows = self.approximate.candidate_rows(query, how_many + excluded, len(view.ids))
            if rows is not None:
                scores = view.vectors[rows] @ query
                top = self._finish(view, rows, scores, exclude, rescorer, item_terms, how_many)
                if len(top) == min(how_many, len(view.ids) - excluded):
                    return top
        rows, scores = self._groups.best(view.vectors, query, how_many + excluded,
                                         _transform(view, cosine, item_terms, rescorer))
        if excluded:
            kept = ~np.isin(rows, exclude)
            rows, scores = rows[kept], scores[kept]
        finite = np.isfinite(scores[:how_many])
        top = rows[:how_many][finite]
        return list(zip(view.ids[top].tolist(), scores[:how_many][finite].astype(float).tolist()))

    @staticmethod
    def _finish(view: TableView, rows: np.ndarray, scores: np.ndarray, exclude, rescorer, item_terms,
                how_many: int) -> list[tuple[str, float]]:
        """Terms, exclusions, rescorer and top-N over the approximate index's candidate rows."""
        if item_terms is not None:
            scores += item_terms[rows]
        if exclude is not None and len(exclude):
            scores[np.isin(rows, exclude)] = -np.inf
        ids = view.ids[rows]
        if rescorer is not None:
            scores = np.asarray(rescorer(ids, scores), dtype=np.float64)
            scores = np.where(np.isnan(scores), -np.inf, scores)
        top = top_indices(scores, how_many)
        return list(zip(ids[top].tolist(), scores[top].astype(float).tolist()))


def _transform(view: TableView, cosine: bool, item_terms, rescorer):
    """What the exact pass applies to each block's scores of this query (None: nothing)."""
    if not cosine and item_terms is None and rescorer is None:
        return None

    def transform(low: int, high: int, scores: np.ndarray) -> np.ndarray:
        if cosine:
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = scores / view.norms[low:high]
            scores[~np.isfinite(scores)] = 0.0
        if item_terms is not None:
            scores = scores + item_terms[low:high]
        if rescorer is not None:
            scores = np.asarray(rescorer(view.ids[low:high], scores), dtype=np.float64)
            scores = np.where(np.isnan(scores), -np.inf, scores)
        return scores

    return transform


__all__ = ["ItemRanker", "RankingSettings", "Rescorer"]
