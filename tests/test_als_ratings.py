"""The per-entity value store: writes merged on read equal a store rebuilt from scratch, before and after
compaction; positives follow the writes; the transposed side holds the same pairs."""
from __future__ import annotations

import numpy as np

from headwater.apps.als import ratings
from headwater.apps.als.ratings import RatingStore


def test_delta_reads_equal_a_rebuilt_store_and_compaction_changes_nothing(monkeypatch):
    monkeypatch.setattr(ratings, "COMPACT_MINIMUM", 10 ** 9)
    rng = np.random.default_rng(2)
    # blocks of writes, each pair at most once per block (as the fold-in writes), 5 % of them removals
    keys = np.concatenate([rng.choice(50 * 80, 250, replace=False) for _ in range(8)])
    rows, cols = keys // 80, keys % 80
    values = rng.integers(1, 6, len(keys)).astype(float)
    values[rng.random(len(keys)) < 0.05] = np.nan
    store = RatingStore.from_pairs(50, rows[:1000], cols[:1000], values[:1000])
    for start in range(1000, len(keys), 250):
        store.replace(rows[start:start + 250], cols[start:start + 250], values[start:start + 250])
    store.replace([60], [1], [2.0])  # a new row grows the store
    assert store.n_rows == 61
    rebuilt = RatingStore.from_pairs(61, np.r_[rows, 60], np.r_[cols, 1], np.r_[values, 2.0])
    query = np.array([3, 60, 17, 0])
    for got, want in zip(store.gather(query), rebuilt.gather(query)):
        np.testing.assert_allclose(got, want)
    np.testing.assert_array_equal(store.positives, rebuilt.positives)
    np.testing.assert_allclose(store.lookup([3, 60, 60], [rebuilt.row_values(3)[0][0], 1, 2]),
                               [rebuilt.row_values(3)[1][0], 2.0, np.nan])
    store.compact()
    assert len(store.delta_rows) == 0 and len(store) == len(rebuilt)
    for got, want in zip(store.gather(query), rebuilt.gather(query)):
        np.testing.assert_allclose(got, want)


def test_the_transposed_store_holds_the_same_pairs():
    store = RatingStore.from_pairs(3, [0, 0, 2], [1, 4, 1], [5.0, -3.0, 1.0])
    by_item = store.transposed(5)
    assert by_item.row_values(1)[0].tolist() == [0, 2] and by_item.row_values(4)[1].tolist() == [-3.0]
    assert by_item.positives.tolist() == [0, 2, 0, 0, 0] and store.nbytes() > 0
