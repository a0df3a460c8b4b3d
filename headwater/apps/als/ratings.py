"""Each entity's values over the other side (a user's items and their values), as the exact solves need them.

A :class:`RatingStore` is one side (by user, or by item): a CSR base — per row an int64 offset, per value
an int32 column and a float32 value, 8 bytes per value — plus a delta of later writes (int32 row and
column, float32 value: 12 bytes each) merged on read, and folded into the base once it outgrows a
quarter of it. Writes are absolute: the value given replaces the pair's, NaN removes the pair, so
applying the same write twice changes nothing. The count of positive values per row is kept as
writes come in (an item's positives are its popularity).

>>> store = RatingStore.from_pairs(3, rows=[0, 0, 2], cols=[1, 4, 1], values=[5.0, 3.0, 1.0])
>>> store.replace([0, 1], [4, 2], [np.nan, 2.0]).tolist()     # previous values; NaN: there was none
[3.0, nan]
>>> seg, cols, values = store.gather(np.array([0, 1]))
>>> seg.tolist(), cols.tolist(), values.tolist(), store.positives.tolist()
([0, 1], [1, 2], [5.0, 2.0], [1, 1, 1])
"""
from __future__ import annotations

import numpy as np

COMPACT_SHARE = 0.25     # fold the delta in once it is this share of the base ...
COMPACT_MINIMUM = 65_536  # ... and at least this many writes (small stores do not compact every batch)


def last_writes(rows, cols, values, order) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (row, col, value) per pair, the write with the largest ``order``; removed pairs (NaN) dropped.

    Sorted by row, then column.
    """
    rows, cols, values = np.asarray(rows), np.asarray(cols), np.asarray(values)
    if len(rows) == 0:
        return rows.astype(np.int64), cols.astype(np.int32), values.astype(np.float32)
    by = np.lexsort((order, cols, rows))
    rows, cols, values = rows[by], cols[by], values[by]
    last = np.r_[(rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1]), True]
    last &= ~np.isnan(values)
    return rows[last].astype(np.int64), cols[last].astype(np.int32), values[last].astype(np.float32)


class RatingStore:
    """One side's values: CSR base + a delta of absolute writes; see the module docstring."""

    def __init__(self, indptr, cols, values):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int32)
        self.values = np.asarray(values, dtype=np.float32)
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        self.positives = np.bincount(rows[self.values > 0], minlength=self.n_rows).astype(np.int64)
        self._clear_delta()

    @classmethod
    def from_pairs(cls, n_rows: int, rows, cols, values) -> RatingStore:
        """A store of the given pairs (a pair given twice keeps the later value)."""
        rows = np.asarray(rows, dtype=np.int64)
        r, c, v = last_writes(rows, np.asarray(cols, dtype=np.int32), np.asarray(values, dtype=np.float64),
                              np.arange(len(rows)))
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
        return cls(indptr, c, v)

    def _clear_delta(self) -> None:
        self.delta_rows = np.zeros(0, np.int32)
        self.delta_cols = np.zeros(0, np.int32)
        self.delta_values = np.zeros(0, np.float32)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def __len__(self) -> int:
        """Values stored, counting a pair once per write not yet folded in."""
        return len(self.cols) + len(self.delta_rows)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.indptr, self.cols, self.values, self.positives,
                                      self.delta_rows, self.delta_cols, self.delta_values))

    def grow(self, n_rows: int) -> None:
        """Room for rows up to ``n_rows`` (new rows are empty)."""
        if n_rows > self.n_rows:
            extra = n_rows - self.n_rows
            self.indptr = np.concatenate([self.indptr, np.full(extra, self.indptr[-1])])
            self.positives = np.concatenate([self.positives, np.zeros(extra, np.int64)])

    def copy(self) -> RatingStore:
        other = RatingStore.__new__(RatingStore)
        for name in ("indptr", "cols", "values", "positives", "delta_rows", "delta_cols", "delta_values"):
            setattr(other, name, getattr(self, name).copy())
        return other

    # --- reads ------------------------------------------------------------------------------------
    def gather(self, query_rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The values of ``query_rows`` (distinct): (segment, column, value) sorted by segment, where
        segment n is ``query_rows[n]``."""
        query = np.asarray(query_rows, dtype=np.int64)
        starts = self.indptr[query]
        lengths = self.indptr[query + 1] - starts
        seg = np.repeat(np.arange(len(query)), lengths)
        positions = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + \
            np.repeat(starts, lengths)
        cols, values = self.cols[positions], self.values[positions]
        if not len(self.delta_rows) or not len(query):
            return seg, cols, values
        by_row = np.argsort(query, kind="stable")
        at = np.minimum(np.searchsorted(query[by_row], self.delta_rows), len(query) - 1)
        hit = query[by_row][at] == self.delta_rows
        if not hit.any():
            return seg, cols, values
        seg = np.concatenate([seg, by_row[at[hit]]])
        cols = np.concatenate([cols, self.delta_cols[hit]])
        values = np.concatenate([values.astype(np.float64), self.delta_values[hit]])
        order = np.r_[np.full(len(positions), -1), np.flatnonzero(hit)]
        return last_writes(seg, cols, values, order)

    def lookup(self, rows, cols) -> np.ndarray:
        """The current value of each (row, col) pair, NaN where there is none."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        out = np.full(len(rows), np.nan)
        inside = rows < self.n_rows
        if not inside.any():
            return out
        distinct = np.unique(rows[inside])
        seg, have_cols, have_values = self.gather(distinct)
        width = int(max(have_cols.max(initial=0), cols.max(initial=0))) + 1
        keys = seg.astype(np.int64) * width + have_cols
        by_key = np.argsort(keys, kind="stable")
        keys, have_values = keys[by_key], have_values[by_key]
        wanted = np.searchsorted(distinct, rows[inside]) * width + cols[inside]
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
        out[np.flatnonzero(inside)[found]] = have_values[at[found]]
        return out

    def row_values(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of one row."""
        _, cols, values = self.gather(np.array([row]))
        return cols, values

    # --- writes -----------------------------------------------------------------------------------
    def replace(self, rows, cols, values, previous: np.ndarray | None = None) -> np.ndarray:
        """Write absolute values (NaN removes the pair), one write per pair; returns the previous values
        (``previous``, when the caller looked them up already)."""
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if len(rows) and rows.max() >= self.n_rows:
            self.grow(int(rows.max()) + 1)
        if previous is None:
            previous = self.lookup(rows, cols)
        np.add.at(self.positives, rows, (values > 0).astype(np.int64) - (previous > 0))
        self.delta_rows = np.concatenate([self.delta_rows, rows.astype(np.int32)])
        self.delta_cols = np.concatenate([self.delta_cols, np.asarray(cols, dtype=np.int32)])
        self.delta_values = np.concatenate([self.delta_values, values])
        if len(self.delta_rows) > max(COMPACT_MINIMUM, COMPACT_SHARE * len(self.cols)):
            self.compact()
        return previous

    def compact(self) -> None:
        """Fold the delta into the base."""
        if not len(self.delta_rows):
            return
        base_rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))
        rows = np.concatenate([base_rows, self.delta_rows.astype(np.int64)])
        order = np.r_[np.full(len(base_rows), -1), np.arange(len(self.delta_rows))]
        r, c, v = last_writes(rows, np.concatenate([self.cols, self.delta_cols]),
                              np.concatenate([self.values.astype(np.float64), self.delta_values]), order)
        self.indptr = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=self.n_rows), out=self.indptr[1:])
        self.cols, self.values = c, v
        self._clear_delta()

    def transposed(self, n_cols: int) -> RatingStore:
        """The other side's store of the same pairs (by item from by user)."""
        self.compact()
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))
        return RatingStore.from_pairs(n_cols, self.cols, rows, self.values)


__all__ = ["RatingStore", "last_writes"]
