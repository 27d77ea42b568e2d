"""The evaluation engine against brute-force definitions (``aprnb/reference/metrics.py``).

Factors are drawn on a grid of multiples of 0.5 so that every score is exact in
float32 and float64 alike and ties are frequent: the engine and the reference
then have to agree exactly on the tie rule, not just approximately.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import aprnb
from aprnb import evaluate
from aprnb.data import leave_one_out, load_ncf, merge
from checks import keep_one_per_row
from aprnb.evaluation import top_k
from aprnb.reference import (blocked_holdout, naive_holdout, naive_loo, naive_sampled,
                             naive_top_k, pairs)

TOL = 1e-12
# The brute-force comparisons let test items also be training items on purpose (the
# engine must then agree with the references); evaluate warns about that, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:.*can never be hit:RuntimeWarning")


def assert_same_metrics(got, want, tol=TOL):
    assert set(got) == set(want), (sorted(got), sorted(want))
    assert got["n_users"] == want["n_users"]
    for key, w in want.items():
        g = got[key]
        if isinstance(w, float) and np.isnan(w):
            assert np.isnan(g), key
        else:
            assert abs(g - w) <= tol, (key, g, w)


def grid_factors(rng, n, d, dtype, step=0.5, top=2):
    """Factors on a coarse grid: exact dot products and plenty of ties."""
    return (rng.integers(-top, top + 1, size=(n, d)) * step).astype(dtype)


@st.composite
def problems(draw, loo=False):
    """Small random ranking problems: grid factors, train/test (usually disjoint), cut-offs
    from 1 to a few more than the number of items, and an optional subset of users."""
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 12))
    d = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = grid_factors(rng, n_users, d, dtype, top=draw(st.integers(0, 2)))
    Q = grid_factors(rng, n_items, d, dtype, top=draw(st.integers(0, 2)))
    p_train = draw(st.floats(0.0, 0.9))
    p_test = draw(st.floats(0.0, 1.0 - p_train))
    cell = rng.choice(3, size=(n_users, n_items), p=[1.0 - p_train - p_test, p_train, p_test])
    train_dense = cell == 1
    test_dense = cell == 2
    if draw(st.booleans()):                      # sometimes let test items also be in train
        train_dense |= rng.random((n_users, n_items)) < 0.2
    if loo:                                      # at most one test item per user
        keep_one_per_row(test_dense, rng)
    if test_dense.any() and not (test_dense & ~train_dense).any():
        # not every test item a training item: evaluate refuses that (all metrics 0)
        train_dense[np.unravel_index(np.argmax(test_dense), test_dense.shape)] = False
    train = sp.csr_matrix(train_dense.astype(np.float32))
    test = sp.csr_matrix(test_dense.astype(np.float32))
    ks = draw(st.lists(st.integers(1, n_items + 3), min_size=1, max_size=3, unique=True))
    users = draw(st.none() | st.lists(st.integers(0, n_users - 1), unique=True,
                                      max_size=n_users))
    return P, Q, train, test, ks, users


@settings(max_examples=150)
@given(case=problems(), exclude=st.booleans())
def test_holdout_equals_brute_force(case, exclude):
    P, Q, train, test, ks, users = case
    got = evaluate((P, Q), train, test, k=ks, protocol="holdout", users=users,
                   exclude_train=exclude)
    assert_same_metrics(got, naive_holdout(P, Q, train, test, ks, users, exclude))


@settings(max_examples=150)
@given(case=problems(loo=True), exclude=st.booleans())
def test_loo_equals_brute_force(case, exclude):
    P, Q, train, test, ks, users = case
    got = evaluate((P, Q), train, test, k=ks, protocol="loo", users=users,
                   exclude_train=exclude)
    assert_same_metrics(got, naive_loo(P, Q, train, test, ks, users, exclude))


@settings(max_examples=60)
@given(case=problems(loo=True), data=st.data())
def test_sampled_equals_brute_force(case, data):
    P, Q, train, test, ks, users = case
    n_users, n_items = train.shape
    n_neg = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    negatives = rng.integers(-1, n_items, size=(n_users, n_neg))
    got = evaluate((P, Q), train, test, k=ks, protocol="sampled", users=users,
                   negatives=negatives)
    assert_same_metrics(got, naive_sampled(P, Q, test, negatives, ks, users))


def first_item_per_user(test):
    """Keep only the lowest-index test item of every user (a leave-one-out test set)."""
    C = test.tocsr()
    rows = [u for u in range(C.shape[0]) if C.indptr[u + 1] > C.indptr[u]]
    cols = [C.indices[C.indptr[u]:C.indptr[u + 1]].min() for u in rows]
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=C.shape)


@settings(max_examples=60)
@given(case=problems(), protocol=st.sampled_from(["holdout", "loo"]), data=st.data())
def test_independent_of_block_size_and_threads(case, protocol, data):
    P, Q, train, test, ks, users = case
    if protocol == "loo":
        test = first_item_per_user(test)
        # evaluate refuses a test set wholly inside train (every metric would be 0)
        assume(test.nnz == 0 or test.multiply(train).count_nonzero() < test.nnz)
    n_users = train.shape[0]
    block = data.draw(st.integers(1, n_users + 2))
    ref = evaluate((P, Q), train, test, k=ks, protocol=protocol, users=users,
                   n_threads=1, block_size=n_users)
    got = evaluate((P, Q), train, test, k=ks, protocol=protocol, users=users,
                   n_threads=2, block_size=block)
    assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_size_and_threads_with_continuous_scores(synthetic, dtype):
    """Real-valued random factors (no grid): metrics must not depend on the blocking."""
    rng = np.random.default_rng(0)
    train, test = leave_one_out(synthetic, random_state=0)
    P = rng.standard_normal((train.shape[0], 16)).astype(dtype)
    Q = rng.standard_normal((train.shape[1], 16)).astype(dtype)
    for protocol in ("holdout", "loo"):
        ref = evaluate((P, Q), train, test, k=[1, 10, 50], protocol=protocol, n_threads=1)
        for block, threads in [(1, 1), (7, 2), (64, 2), (1000, 1)]:
            got = evaluate((P, Q), train, test, k=[1, 10, 50], protocol=protocol,
                           n_threads=threads, block_size=block)
            assert got == ref, (protocol, block, threads)


# -- top-K / recommend ----------------------------------------------------------------------------
@settings(max_examples=150)
@given(case=problems(), k=st.integers(1, 15), exclude=st.booleans(), data=st.data())
def test_top_k_equals_naive_tie_rule(case, k, exclude, data):
    P, Q, train, _, _, users = case
    users = np.arange(train.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    block = data.draw(st.none() | st.integers(1, 8))
    threads = data.draw(st.sampled_from([1, 2]))
    items, scores = top_k(P, Q, users, k, exclude=train if exclude else None,
                          n_threads=threads, block_size=block)
    want_items, want_scores = naive_top_k(P, Q, users, k, train if exclude else None)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(scores.astype(np.float64), want_scores)
    assert scores.dtype == P.dtype


@settings(max_examples=100)
@given(case=problems(), k=st.integers(1, 15), exclude=st.booleans(), data=st.data())
def test_tiled_top_k_and_holdout_with_tiny_tiles(case, k, exclude, data):
    # The tiled engine keeps each user's heap and exclusion pointer across item
    # tiles; tiles of 1-5 items make every boundary case (excluded items on a tile
    # edge, ties across tiles, a user whose candidates all sit in one tile) common.
    P, Q, train, test, ks, users = case
    import aprnb.evaluation._engine as ev
    old = ev.TILE_BYTES
    block = data.draw(st.none() | st.integers(1, 8))
    threads = data.draw(st.sampled_from([1, 2]))
    ev.TILE_BYTES = data.draw(st.integers(1, 5)) * P.dtype.itemsize   # 1-5 items per tile
    try:
        got = evaluate((P, Q), train, test, k=ks, protocol="holdout", users=users,
                       exclude_train=exclude, n_threads=threads, block_size=block)
        uu = np.arange(train.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
        items, scores = top_k(P, Q, uu, k, exclude=train if exclude else None,
                              n_threads=threads, block_size=block)
    finally:
        ev.TILE_BYTES = old
    assert_same_metrics(got, naive_holdout(P, Q, train, test, ks, users, exclude))
    want_items, want_scores = naive_top_k(P, Q, uu, k, train if exclude else None)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(scores.astype(np.float64), want_scores)


def test_top_k_tie_rule_by_hand():
    P = np.array([[1.0]])
    Q = np.array([[1.0], [2.0], [1.0], [2.0], [0.0], [1.0]])
    items, scores = top_k(P, Q, [0], 6)
    assert items.tolist() == [[1, 3, 0, 2, 5, 4]]
    X = sp.csr_matrix(np.array([[0, 1, 1, 0, 0, 0]], dtype=np.float32))
    items, scores = top_k(P, Q, [0], 6, exclude=X)
    assert items.tolist() == [[3, 0, 5, 4, -1, -1]]
    assert scores[0, 4:].tolist() == [-np.inf, -np.inf]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recommend_excludes_training_items(synthetic, dtype):
    model = aprnb.BPR(factors=8, epochs=3, n_threads=1, random_state=0, dtype=dtype,
                      show_progress=False).fit(synthetic)
    users = np.arange(0, synthetic.shape[0], 7)
    items, scores = model.recommend(users, k=20, exclude=synthetic)
    train = pairs(synthetic)
    assert not {(int(u), int(i)) for u, row in zip(users, items) for i in row} & train
    # Continuous scores: the exact tie rule is checked on grid factors above; here the
    # list must be sorted, carry the model's scores, and beat every other candidate.
    S = model.score(users)
    for row, u in enumerate(users):
        np.testing.assert_allclose(scores[row], S[row, items[row]], rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(scores[row]) <= 0)
        rest = np.setdiff1d(np.arange(synthetic.shape[1]),
                            np.concatenate([items[row], synthetic[u].indices]))
        assert S[row, rest].max() <= scores[row, -1] + 1e-5


# -- cut-offs, edge cases -------------------------------------------------------------------------
def test_k_larger_than_candidates_and_several_k():
    P = np.array([[1.0], [1.0]])
    Q = np.array([[3.0], [2.0], [1.0]])
    train = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1], [0, 1, 1]], dtype=np.float32))
    got = evaluate((P, Q), train, test, k=[1, 2, 50], protocol="holdout")
    want = naive_holdout(P, Q, train, test, [1, 2, 50])
    assert_same_metrics(got, want)
    # user 0: candidates 1, 2; test {2} at rank 1 -> recall@2 = 1, precision@50 = 1/50
    # user 1: candidates 0, 1, 2; test {1, 2} at ranks 1, 2
    assert got["recall@1"] == 0.0
    assert got["recall@2"] == pytest.approx((1.0 + 0.5) / 2)
    assert got["precision@50"] == pytest.approx((1 / 50 + 2 / 50) / 2)


def test_users_without_test_items_are_skipped():
    rng = np.random.default_rng(0)
    P, Q = grid_factors(rng, 5, 3, np.float64), grid_factors(rng, 8, 3, np.float64)
    train = sp.csr_matrix((rng.random((5, 8)) < 0.3).astype(np.float32))
    test = sp.lil_matrix((5, 8), dtype=np.float32)
    test[1, 2] = test[3, 5] = 1
    test = sp.csr_matrix(test - test.multiply(train))
    got = evaluate((P, Q), train, test, k=[3], protocol="loo")
    assert got["n_users"] == test.getnnz(axis=1).astype(bool).sum()
    assert_same_metrics(got, naive_loo(P, Q, train, test, [3]))
    empty = evaluate((P, Q), train, test, k=[3], users=[0, 2])
    assert empty["n_users"] == 0 and np.isnan(empty["recall@3"])


def test_loo_rank_counts_ties_against_the_positive():
    P = np.array([[1.0]])
    Q = np.array([[1.0], [1.0], [1.0], [0.0]])
    test = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    train = sp.csr_matrix((1, 4), dtype=np.float32)
    got = evaluate((P, Q), train, test, k=[1, 2, 3], protocol="loo")
    # two other items tie with the positive: rank 2
    assert got["hr@1"] == got["hr@2"] == 0.0
    assert got["hr@3"] == 1.0
    assert got["ndcg@3"] == pytest.approx(1 / np.log2(4))
    assert got["auc"] == pytest.approx(1 - 2 / 3)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_float32_scores_remain_candidates():
    """Finite float32 factors can still give scores of +-inf; such an item is a candidate.

    Scores in float32: item 0 -> +inf, item 1 -> 1e20, item 2 -> -inf (no training
    items). Item 2 must still be ranked (third), not treated like an excluded item.
    """
    P = np.array([[1e20]], dtype=np.float32)
    Q = np.array([[1e20], [1.0], [-1e20]], dtype=np.float32)
    items, _ = top_k(P, Q, [0], 3)
    assert items.tolist() == [[0, 1, 2]]
    train = sp.csr_matrix((1, 3), dtype=np.float32)
    test = sp.csr_matrix(np.array([[0, 0, 1]], dtype=np.float32))
    got = evaluate((P, Q), train, test, k=[3], protocol="loo")
    # rank = #{other candidates with score >= -inf} = 2 -> hit at K=3, AUC = 1 - 2/2
    assert got["hr@3"] == 1.0 and got["auc"] == 0.0
    assert evaluate((P, Q), train, test, k=[3])["recall@3"] == 1.0


def test_loo_rejects_several_test_items():
    P, Q = np.ones((2, 2)), np.ones((3, 2))
    test = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))
    with pytest.raises(ValueError, match="one test item"):
        evaluate((P, Q), sp.csr_matrix((2, 3)), test, protocol="loo")


# -- sampled protocol on NCF-style files ----------------------------------------------------------
def test_sampled_protocol_on_ncf_files(tmp_path):
    (tmp_path / "toy.train.rating").write_text(
        "0\t0\t1\t1\n0\t1\t1\t2\n1\t2\t1\t3\n2\t0\t1\t4\n3\t3\t1\t5\n")
    (tmp_path / "toy.test.rating").write_text("0\t2\t1\t9\n1\t0\t1\t9\n2\t4\t1\t9\n3\t1\t1\t9\n")
    (tmp_path / "toy.test.negative").write_text(
        "(0,2)\t3\t4\t5\n(1,0)\t1\t5\n(2,4)\t1\t2\t3\n")          # user 3 has none
    ds = load_ncf(tmp_path / "toy")
    assert ds.negatives.shape == (4, 3)
    P = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])
    Q = np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 0.0], [1.0, 0.0], [0.5, 0.5], [2.0, 2.0]])
    got = evaluate((P, Q), ds.train, ds.test, k=[1, 2, 3], protocol="sampled",
                   negatives=ds.negatives)
    assert_same_metrics(got, naive_sampled(P, Q, ds.test, ds.negatives, [1, 2, 3]))
    # by hand: user 0 positive 2 (score 2) vs negatives 3, 4, 5 (1, 0.5, 2) -> rank 1
    #          user 1 positive 0 (1) vs 1, 5 (2, 2) -> rank 2
    #          user 2 positive 4 (1) vs 1, 2, 3 (2, 2, 1) -> rank 3
    assert got["n_users"] == 3
    assert got["hr@1"] == 0.0
    assert got["hr@2"] == pytest.approx(1 / 3)
    assert got["hr@3"] == pytest.approx(2 / 3)
    assert got["auc"] == pytest.approx(((1 - 1 / 3) + (1 - 2 / 2) + (1 - 3 / 3)) / 3)
    with pytest.raises(ValueError, match="negatives"):
        evaluate((P, Q), ds.train, ds.test, protocol="sampled")


# -- real data ------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_gowalla_holdout_matches_independent_numpy(gowalla):
    """Recall@20 and NDCG@20 on Gowalla equal an independent blocked NumPy version.

    The factors are seeded random float32 with some structure so that about a
    quarter of the users have hits: ``Q`` is a Gaussian random projection of each
    item's set of training users, ``P`` the mean of the user's training item rows.
    The engine is checked on all users in the memory test below; the NumPy
    reference here takes about 30 s for all 29,858 users on this machine, so the
    comparison is restricted to a seeded random subset of 4,000 users.
    """
    rng = np.random.default_rng(0)
    train, test = gowalla.train, gowalla.test
    G = rng.standard_normal((gowalla.n_users, 64)).astype(np.float32)
    Q = np.asarray(train.T @ G, dtype=np.float32)
    Q /= np.sqrt(np.maximum(1.0, np.linalg.norm(Q, axis=1, keepdims=True)))
    deg = np.maximum(1, np.diff(train.indptr))[:, None]
    P = np.asarray(train @ Q / deg, dtype=np.float32)
    users = np.sort(rng.choice(gowalla.n_users, size=4000, replace=False))
    got = evaluate((P, Q), train, test, k=[20], users=users)
    want = blocked_holdout(P, Q, train, test, 20, users=users)
    assert got["n_users"] == want["n_users"] == 4000
    assert got["recall@20"] > 0.01                     # the check is not vacuous
    assert abs(got["recall@20"] - want["recall@20"]) <= 1e-6
    assert abs(got["ndcg@20"] - want["ndcg@20"]) <= 1e-6


@pytest.mark.realdata
def test_lastfm_loo_with_heavy_ties_matches_brute_force(lastfm):
    """Leave-one-out on Last.fm (train+test merged, seed 0) with quantised factors."""
    X = merge(lastfm.train, lastfm.test)
    train, test = leave_one_out(X, random_state=0)
    rng = np.random.default_rng(0)
    P = (np.round(rng.standard_normal((lastfm.n_users, 8)) * 2) / 2).astype(np.float32)
    Q = (np.round(rng.standard_normal((lastfm.n_items, 8)) * 2) / 2).astype(np.float32)
    got = evaluate((P, Q), train, test, k=[100], protocol="loo")
    want = naive_loo(P, Q, train, test, [100])
    assert got["n_users"] == want["n_users"] > 1800
    for key in ("hr@100", "ndcg@100", "auc"):
        assert abs(got[key] - want[key]) <= 1e-6, key
    S = P.astype(np.float64) @ Q.T.astype(np.float64)
    assert len(np.unique(S[0])) < 100                  # ties are everywhere


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import aprnb
    from aprnb.data import load_lightgcn

    ds = load_lightgcn(sys.argv[1])
    rng = np.random.default_rng(0)
    P = rng.standard_normal((ds.n_users, 64)).astype(np.float32)
    Q = rng.standard_normal((ds.n_items, 64)).astype(np.float32)
    aprnb.evaluate((P, Q), ds.train, ds.test, k=[20], users=np.arange(50))   # JIT warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = aprnb.evaluate((P, Q), ds.train, ds.test, k=[20])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "after_kb": after, "n_users": res["n_users"]}))
""")


@pytest.mark.realdata
def test_gowalla_full_evaluation_peak_memory(gowalla, shared_data):
    """Evaluating all Gowalla users raises the peak RSS by < 1 GB (full scores: 4.9 GB).

    Measured in a fresh interpreter with ``resource.getrusage`` (peak RSS) right
    before and after one ``evaluate`` call over every user.
    """
    folder = shared_data / "gowalla"
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_users"] == 29858
    grown_kb = out["after_kb"] - out["before_kb"]
    assert grown_kb < 2**20, f"peak RSS grew by {grown_kb / 2**20:.2f} GB"


# ---------------------------------------------------------------------------------------
# protocols chosen from the data; splits checked against the model's provenance
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted_split(synthetic):
    train, test = leave_one_out(synthetic, random_state=0)
    model = aprnb.BPR(factors=8, epochs=3, n_threads=1, random_state=0,
                      show_progress=False).fit(train)
    rng = np.random.default_rng(0)
    neg = np.full((train.shape[0], 10), -1, dtype=np.int64)
    for u in range(train.shape[0]):
        seen = set(train[u].indices) | set(test[u].indices)
        neg[u] = rng.choice([j for j in range(train.shape[1]) if j not in seen], 10, False)
    return model, train, test, neg


def test_negatives_select_the_sampled_protocol(fitted_split):
    """Problem 3: negatives without protocol="sampled" silently gave holdout metrics."""
    model, train, test, neg = fitted_split
    got = evaluate(model, train, test, k=[5], negatives=neg)
    P, Q = model.user_factors_, model.item_factors_
    assert_same_metrics(got, naive_sampled(P, Q, test, neg, [5]))
    assert "recall@5" not in got
    for protocol in ("holdout", "loo"):
        with pytest.raises(ValueError, match=f"protocol='{protocol}', which ranks against all"):
            evaluate(model, train, test, k=[5], negatives=neg, protocol=protocol)
    assert "recall@5" in evaluate(model, train, test, k=[5])        # no negatives: holdout


def test_dataset_argument_brings_test_and_negatives(fitted_split):
    model, train, test, neg = fitted_split
    ds = aprnb.data.Dataset(train=train, test=test, negatives=neg)
    assert evaluate(model, ds, k=[5]) == evaluate(model, train, test, k=[5], negatives=neg)
    with pytest.raises(TypeError, match="either a Dataset or"):
        evaluate(model, ds, test, k=[5])
    # an explicit full-ranking protocol sets the Dataset's own negatives aside
    assert evaluate(model, ds, k=[5], protocol="loo") == evaluate(model, train, test, k=[5],
                                                                  protocol="loo")
    with pytest.raises(ValueError, match="would ignore them"):
        evaluate(model, ds, k=[5], protocol="loo", negatives=neg)
    with pytest.raises(TypeError, match="test is missing"):
        evaluate(model, train, k=[5])


def test_evaluate_refuses_another_split_or_leaked_test(fitted_split, synthetic):
    """Problem 1 in Python: a model scored on a re-split, or on test items it trained on."""
    model, train, test, _ = fitted_split
    other_train, other_test = leave_one_out(synthetic, random_state=1)
    with pytest.raises(ValueError, match="train is not the matrix this BPR was trained on"):
        evaluate(model, other_train, other_test, protocol="loo")
    with pytest.raises(ValueError, match=r"\d+ of the \d+ test interactions are ones this BPR "
                                         r"was trained on"):
        evaluate(model, train, other_test, protocol="loo")
    # deliberate use: the override, or bare factors (which carry no provenance)
    res = evaluate(model, other_train, other_test, protocol="loo", check_split=False)
    assert res == evaluate((model.user_factors_, model.item_factors_), other_train,
                           other_test, protocol="loo")
    with pytest.raises(ValueError, match="not the matrix"):
        aprnb.robustness(model, other_train, other_test, eps=0.5, kinds=("random",))
    with pytest.raises(ValueError, match="test interactions are ones"):
        aprnb.robustness(model, train, other_test, eps=0.5, kinds=("random",))


def test_robustness_under_the_sampled_protocol(fitted_split):
    model, train, test, neg = fitted_split
    rep = aprnb.robustness(model, train, test, eps=(0.5,), kinds=("adversarial",), k=5,
                           negatives=neg)
    clean = evaluate(model, train, test, k=[5], negatives=neg)
    assert rep[0]["hr@5"] == clean["hr@5"] and rep[0]["ndcg@5"] == clean["ndcg@5"]
    Pp, Qp = aprnb.perturb(model, train, 0.5, random_state=0)
    pert = evaluate((Pp, Qp), train, test, k=[5], negatives=neg)
    assert rep[1]["ndcg@5"] == pert["ndcg@5"]
    with pytest.raises(ValueError, match="would ignore them"):
        aprnb.robustness(model, train, test, eps=0.5, protocol="loo", negatives=neg)


def test_fit_validation_under_the_sampled_protocol(fitted_split):
    model, train, test, neg = fitted_split
    m = aprnb.BPR(factors=8, epochs=2, n_threads=1, random_state=0, show_progress=False)
    m.fit(train, callback=aprnb.Validation(test, negatives=neg, k=5))
    want = evaluate(m, train, test, k=[5], negatives=neg)
    assert m.history_[-1]["ndcg@5"] == want["ndcg@5"]


def test_evaluate_users_as_raw_ids(tmp_path):
    (tmp_path / "tr.csv").write_text("u,i\nann,x\nann,y\nbob,y\nbob,z\ncid,x\ncid,z\n")
    (tmp_path / "te.csv").write_text("u,i\nann,z\nbob,x\ncid,y\n")
    ds = aprnb.data.open_dataset(tmp_path / "tr.csv", test=tmp_path / "te.csv")
    model = aprnb.BPR(factors=2, epochs=2, n_threads=1, random_state=0,
                      show_progress=False).fit(ds)
    got = evaluate(model, ds, k=[1], users=["cid", "ann"], raw_ids=True)
    assert got == evaluate(model, ds, k=[1], users=[2, 0])
    with pytest.raises(ValueError, match=r"unknown user id\(s\) \['dan'\]"):
        evaluate(model, ds, k=[1], users=["dan"], raw_ids=True)
