"""Top-N in shared passes and through the ANN index: the same answers as scoring one query alone."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from headwater.apps.als.factors import ALSFactors, ALSSettings
from serving_layer.als_model import ALSServingModel
from serving_layer.ann_index import ANNSettings
from serving_layer.item_ranking import ItemRanker, RankingSettings
from serving_layer.score_groups import BLOCK_ROWS, ScoreGroups
from serving_layer.vector_store import FactorTable

ITEMS = BLOCK_ROWS * 2 + 123  # several blocks, the last one partial


def table(n=ITEMS, k=12, seed=3) -> FactorTable:
    rng = np.random.default_rng(seed)
    return FactorTable([f"i{i}" for i in range(n)], rng.standard_normal((n, k)).astype(np.float32))


def reference_top(items: FactorTable, query, how_many, exclude=(), rescorer=None, terms=None, cosine=False):
    """Single scoring with plain numpy, as the serving layer did before shared passes."""
    view = items.view
    scores = (view.vectors.astype(np.float64) @ np.asarray(query, np.float64))
    if cosine:
        scores = scores / view.norms
    if terms is not None:
        scores = scores + terms
    scores[list(exclude)] = -np.inf
    if rescorer is not None:
        scores = np.where(np.isnan(rescored := rescorer(view.ids, scores)), -np.inf, rescored)
    order = np.argsort(-scores, kind="stable")[:how_many]
    return [view.ids[i] for i in order if np.isfinite(scores[i])]


def boost_even(ids, scores):
    scores = np.asarray(scores, dtype=np.float64).copy()
    odd = np.array([int(i[1:]) % 2 == 1 for i in ids])
    scores[odd] = np.nan
    return scores * 2


def run_concurrently(calls):
    """Run the calls in threads released at once; results in call order."""
    results, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(n):
        barrier.wait()
        results[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def until_shared(one_round, rounds: int = 20) -> list:
    """Every round's answers, repeating ``one_round()`` (-> answers, passes, queries) until its concurrent queries
    shared a pass: on a busy machine a thread the barrier released may finish alone before the others arrive."""
    answers = []
    for _ in range(rounds):
        found, passes, queries = one_round()
        answers.append(found)
        if passes < queries:
            return answers
    raise AssertionError(f"{queries} concurrent queries never shared a pass in {rounds} rounds")


def test_grouped_best_rows_are_bit_identical_to_single_ones():
    items = table()
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((6, 12)).astype(np.float32)
    keeps = [1, 5, 40, 300, 7, 2000]
    singles = [ScoreGroups().best(items.view.vectors, q, k) for q, k in zip(queries, keeps)]

    def one_round():
        groups = ScoreGroups(max_queries=6, wait_sec=2.0)
        answers = run_concurrently([lambda q=q, k=k: groups.best(items.view.vectors, q, k)
                                    for q, k in zip(queries, keeps)])
        return answers, groups.products, len(queries)

    for grouped in until_shared(one_round):
        for (rows, scores), (g_rows, g_scores) in zip(singles, grouped):
            assert np.array_equal(rows, g_rows) and np.array_equal(scores, g_scores)
    for (rows, scores), q, k in zip(singles, queries, keeps):
        exact = items.view.vectors.astype(np.float64) @ q
        assert rows.tolist() == np.argsort(-exact, kind="stable")[:k].tolist()
        np.testing.assert_allclose(scores, exact[rows], rtol=1e-5, atol=1e-5)


def test_ties_rank_by_row_and_filtered_items_never_rank():
    matrix = np.ones((BLOCK_ROWS + 10, 2), dtype=np.float32)
    rows, scores = ScoreGroups().best(matrix, np.array([1.0, 1.0]), keep=3)
    assert rows.tolist() == [0, 1, 2] and scores.tolist() == [2.0, 2.0, 2.0]

    def only_last_two(low, high, block):
        return np.where(np.arange(low, high) >= len(matrix) - 2, block, -np.inf)

    rows, _ = ScoreGroups().best(matrix, np.array([1.0, 1.0]), keep=5, transform=only_last_two)
    assert rows.tolist() == [len(matrix) - 2, len(matrix) - 1]


def test_grouped_top_n_matches_single_with_exclusions_rescorer_offsets_and_terms():
    items = table()
    settings = RankingSettings(group_max_queries=8, group_wait_ms=2000.0, ann=ANNSettings(enabled=False))
    rng = np.random.default_rng(1)
    terms = rng.standard_normal(ITEMS).astype(np.float32)
    cases = [dict(how_many=10), dict(how_many=15, exclude=items.rows([f"i{i}" for i in range(0, ITEMS, 7)])),
             dict(how_many=5, rescorer=boost_even), dict(how_many=12, cosine=True),
             dict(how_many=7, item_terms=terms),
             dict(how_many=3, exclude=items.rows(["i1", "i2"]), rescorer=boost_even)]
    queries = rng.standard_normal((len(cases), 12)).astype(np.float32)
    alone = [ItemRanker(items, RankingSettings(ann=ANNSettings(enabled=False))).top_n(q, **c)
             for q, c in zip(queries, cases)]
    def one_round():
        ranker = ItemRanker(items, settings)
        answers = run_concurrently([lambda q=q, c=c: ranker.top_n(q, **c) for q, c in zip(queries, cases)])
        return answers, ranker._groups.products, len(cases)

    for together in until_shared(one_round):
        assert together == alone  # ids and float scores, bit for bit
    for q, c, answer in zip(queries, cases, alone):
        expected = reference_top(items, q, c["how_many"], exclude=c.get("exclude", ()), rescorer=c.get("rescorer"),
                                 terms=c.get("item_terms"), cosine=c.get("cosine", False))
        assert [i for i, _ in answer] == expected


def test_recommend_endpoint_pages_the_same_under_concurrency(make_config):
    from serving_layer.app import create_app
    from serving_layer.model_manager import ModelManager

    rng = np.random.default_rng(5)
    users = [f"u{n}" for n in range(8)]
    factors = ALSFactors(users, rng.standard_normal((8, 6)), [f"i{n}" for n in range(3000)],
                         rng.standard_normal((3000, 6)), {u: {f"i{n}" for n in range(3 * k, 3 * k + 5)}
                                                          for k, u in enumerate(users)}, ALSSettings(True))
    manager = ModelManager(model_class=ALSServingModel)
    manager.swap(ALSServingModel(factors, version=1, ranking=RankingSettings(group_wait_ms=50.0)))
    app = create_app(make_config(), manager)
    urls = [f"/recommend/{u}?howMany=4&offset={k % 3}" for k, u in enumerate(users)]
    alone = [app.test_client().get(url).text for url in urls]
    together = run_concurrently([lambda url=url: app.test_client().get(url).text for url in urls])
    assert together == alone
    model = manager.model
    for url, text, user in zip(urls, alone, users):
        offset = int(url.rsplit("=", 1)[1])
        top = reference_top(model.items, model.users.vector(user), 4 + offset, exclude=model.known_rows(user))
        assert [line.split(",")[0] for line in text.splitlines()] == top[offset:offset + 4]


def wait_ready(ranker: ItemRanker, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not ranker.approximate.ready:
        assert time.monotonic() < deadline, "the ANN index was not built"
        time.sleep(0.05)


@pytest.fixture
def ann_model():
    rng = np.random.default_rng(11)
    n = 5000
    factors = ALSFactors(["u0", "u1"], rng.standard_normal((2, 16)), [f"i{i}" for i in range(n)],
                         rng.standard_normal((n, 16)), {"u0": {"i1", "i2"}}, ALSSettings(True))
    settings = RankingSettings(ann=ANNSettings(min_items=1000, rebuild_fraction=0.001))
    model = ALSServingModel(factors, version=1, ranking=settings)
    wait_ready(model.ranker)
    return model


def exact_ids(model, query, how_many, exclude=None):
    return [i for i, _ in ItemRanker(model.items, RankingSettings(ann=ANNSettings(enabled=False)))
            .top_n(query, how_many, exclude)]


def test_ann_answers_like_exact_with_exclusions_and_exact_scores(ann_model):
    rng = np.random.default_rng(2)
    hits = 0
    for q in rng.standard_normal((50, 16)).astype(np.float32):
        approximate = ann_model.top_n(q, 10)
        hits += len({i for i, _ in approximate} & set(exact_ids(ann_model, q, 10)))
        for item, score in approximate:  # candidates are re-ranked with the table's own vectors
            assert score == pytest.approx(float(ann_model.items.vector(item) @ q), rel=1e-5)
    assert hits / 500 >= 0.95
    user = ann_model.users.vector("u0")
    known = ann_model.known_rows("u0")
    assert not {"i1", "i2"} & {i for i, _ in ann_model.top_n(user, 20, exclude=known)}


def test_ann_index_follows_up_updated_and_up_added_items(ann_model):
    assert ann_model.ranker.approximate.ready
    query = np.zeros(16, dtype=np.float32)
    query[0] = 1.0
    best = 100.0 * query
    ann_model.apply_update(["Y", "i42", best.tolist(), 0.0])      # an existing item moves to the top
    assert ann_model.top_n(query, 1) == [("i42", 100.0)]
    ann_model.apply_update(["Y", "brand-new", (2 * best).tolist(), 0.0])  # a new item, better still
    assert [i for i, _ in ann_model.top_n(query, 2)] == ["brand-new", "i42"]
    ann_model.apply_update(["Y", "i42", (-best).tolist(), 0.0])    # and moved away again
    assert "i42" not in {i for i, _ in ann_model.top_n(query, 10)}
    assert ann_model.top_n(query, 10) == ann_model.ranker.top_n(query, 10) != []


def test_ann_codes_are_rebuilt_in_the_background_after_many_changes(ann_model):
    index = ann_model.ranker.approximate
    first = index._codes
    rng = np.random.default_rng(4)
    for n in range(20):  # rebuild-fraction 0.001 of 5000 items: a rebuild after 6 changes
        ann_model.apply_update(["Y", f"i{n}", rng.standard_normal(16).tolist(), 0.0])
    deadline = time.monotonic() + 60
    while index._codes is first or index._building:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert index._codes.rows >= 5000
    query = rng.standard_normal(16).astype(np.float32)
    assert {i for i, _ in ann_model.top_n(query, 10)} >= set(exact_ids(ann_model, query, 10)[:5])


def test_small_catalogues_and_disabled_ann_stay_exact():
    assert ItemRanker(table(n=500), RankingSettings()).approximate is None
    assert ItemRanker(table(n=500), RankingSettings(ann=ANNSettings(enabled=False, min_items=1))).approximate is None
