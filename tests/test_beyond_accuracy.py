"""Beyond-accuracy metrics of ``evaluate`` against slow, obvious definitions.

The brute force below builds every user's top-K list with ``np.lexsort`` (score
descending, then item index ascending: the tie rule of the top-K kernels in
``aprnb/kernels/topk.py``) and computes each metric with explicit Python loops.
Factors are small integers so that every score is exact in float32 and float64
and ties are frequent.
"""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb import evaluate
from aprnb.data import Dataset
from checks import keep_one_per_row

TOL = 1e-12
BEYOND = ("coverage", "gini", "arp", "aplt", "novelty")


# -- the brute-force definitions ----------------------------------------------------------------
def brute_lists(P, Q, train, users, k, exclude):
    """Each user's top-``k`` list: candidates sorted by (-score, item), first ``k``."""
    S = P.astype(np.float64) @ Q.astype(np.float64).T
    dense = train.toarray() != 0
    lists = []
    for u in users:
        cand = np.array([i for i in range(Q.shape[0]) if not (exclude and dense[u, i])],
                        dtype=np.int64)
        order = np.lexsort((cand, -S[u, cand]))          # last key is the primary one
        lists.append([int(i) for i in cand[order][:k]])
    return lists


def brute_popularity(train):
    dense = train.toarray() != 0
    return [int(dense[:, i].sum()) for i in range(dense.shape[1])]


def brute_head(pop):
    """Short head: walk the items by popularity (descending) until 20 % of all
    interactions are covered; every item as popular as the last one walked is in."""
    total = sum(pop)
    if total == 0:
        return set()
    covered = 0
    for i in sorted(range(len(pop)), key=lambda i: -pop[i]):
        covered += pop[i]
        if covered / total >= 0.2:
            return {j for j in range(len(pop)) if pop[j] >= pop[i]}
    raise AssertionError("unreachable")


def brute_gini(counts):
    c = sorted(counts)
    n, total = len(c), sum(c)
    if total == 0:
        return 0.0
    return sum((2 * i - n - 1) * c[i - 1] for i in range(1, n + 1)) / (n * total)


def list_mean(values):
    return sum(values) / len(values) if values else 0.0


def brute_beyond(train, lists, ks):
    """The five metrics at every K, from the users' lists (best first)."""
    n_users, n_items = train.shape
    pop = brute_popularity(train)
    head = brute_head(pop)
    res = {}
    for k in ks:
        top = [lst[:k] for lst in lists]
        counts = [sum(lst.count(i) for lst in top) for i in range(n_items)]
        res[f"coverage@{k}"] = sum(c > 0 for c in counts) / n_items
        res[f"gini@{k}"] = brute_gini(counts)
        per = {"arp": [list_mean([pop[i] for i in lst]) for lst in top],
               "aplt": [list_mean([float(i not in head) for i in lst]) for lst in top],
               "novelty": [list_mean([-math.log2(max(pop[i], 1) / n_users) for i in lst])
                           for lst in top]}
        for name, vals in per.items():
            res[f"{name}@{k}"] = sum(vals) / len(vals)
    return res


def assert_beyond_equal(got, want):
    for key, w in want.items():
        assert abs(got[key] - w) <= TOL * max(1.0, abs(w)), (key, got[key], w)


# -- random problems ------------------------------------------------------------------------------
@st.composite
def problems(draw, loo=False):
    """Integer factors (many ties), train and a disjoint test set, cut-offs up to a few
    more than the number of items (short lists), an optional subset of users."""
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 10))
    d = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = draw(st.integers(0, 2))
    P = rng.integers(-top, top + 1, size=(n_users, d)).astype(dtype)
    Q = rng.integers(-top, top + 1, size=(n_items, d)).astype(dtype)
    p_train = draw(st.floats(0.0, 0.8))
    cell = rng.choice(3, size=(n_users, n_items), p=[0.8 - p_train, p_train, 0.2])
    test = cell == 2
    if loo:                                    # one test item per user at most
        keep_one_per_row(test, rng)
    train = sp.csr_matrix((cell == 1).astype(np.float32))
    ks = draw(st.lists(st.integers(1, n_items + 3), min_size=1, max_size=3, unique=True))
    users = draw(st.none() | st.lists(st.integers(0, n_users - 1), unique=True,
                                      max_size=n_users))
    return P, Q, train, sp.csr_matrix(test.astype(np.float32)), ks, users


def evaluated_users(test, users):
    uu = range(test.shape[0]) if users is None else sorted(users)
    return [u for u in uu if test[u].nnz > 0]


@settings(max_examples=80, deadline=None)
@given(loo=st.booleans(), exclude=st.booleans(), data=st.data())
def test_equals_brute_force(loo, exclude, data):
    P, Q, train, test, ks, users = data.draw(problems(loo))
    got = evaluate((P, Q), train, test, k=ks, protocol="loo" if loo else "holdout",
                   users=users, exclude_train=exclude, beyond_accuracy=True)
    uu = evaluated_users(test, users)
    assert got["n_users"] == len(uu)
    if not uu:
        assert all(np.isnan(got[f"{m}@{k}"]) for m in BEYOND for k in ks)
        return
    lists = brute_lists(P, Q, train, uu, max(ks), exclude)
    assert_beyond_equal(got, brute_beyond(train, lists, ks))


# -- by hand: tied scores, tied popularities, short lists, zero popularity -------------------------
def hand_case():
    """4 users, 5 items, every score equal (ties broken by item index).

    Popularity [3, 3, 1, 0, 0] of 7 interactions: the most popular item alone covers
    20 %, so the threshold is 3 and the head is items 0 *and* 1 (equal popularity,
    never split by index). Items 3 and 4 were never trained on (novelty as popularity
    1: log2(4) = 2). With the training items excluded the users have 4, 3, 2 and 4
    candidates, fewer than K = 5.
    """
    train = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0],
                                    [1, 0, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0],
                                   [0, 0, 1, 0, 0]], dtype=np.float32))
    return np.ones((4, 2)), np.ones((5, 2)), train, test


@pytest.mark.parametrize("protocol", ["holdout", "loo"])
def test_by_hand(protocol):
    P, Q, train, test = hand_case()
    got = evaluate((P, Q), train, test, k=[1, 5], protocol=protocol, per_user=True,
                   beyond_accuracy=True)
    a = -math.log2(3 / 4)
    # lists at K=1: [0], [2], [3], [1]; at K=5: [0,2,3,4], [2,3,4], [3,4], [1,2,3,4]
    want = {"coverage@1": 4 / 5, "gini@1": 4 / 20, "arp@1": 7 / 4, "aplt@1": 2 / 4,
            "novelty@1": (2 * a + 4) / 4,
            "coverage@5": 1.0, "gini@5": 18 / 65, "arp@5": (1 + 1 / 3 + 0 + 1) / 4,
            "aplt@5": (0.75 + 1 + 1 + 0.75) / 4, "novelty@5": ((a + 6) / 2 + 4) / 4}
    assert_beyond_equal(got, want)
    per = got["per_user"]
    np.testing.assert_allclose(per["novelty@5"], [(a + 6) / 4, 2, 2, (a + 6) / 4], rtol=TOL)
    np.testing.assert_allclose(per["arp@5"], [1, 1 / 3, 0, 1], rtol=TOL)
    np.testing.assert_allclose(per["aplt@1"], [0, 1, 1, 0], rtol=TOL)
    assert not {"coverage@1", "gini@1", "coverage@5", "gini@5"} & set(per)


def test_training_items_recommended_without_exclusion():
    # exclude_train=False: every item is a candidate, so the lists are [0..K-1] for all
    P, Q, train, test = hand_case()
    got = evaluate((P, Q), train, test, k=[2], protocol="holdout", exclude_train=False,
                   beyond_accuracy=True)
    assert_beyond_equal(got, {"coverage@2": 2 / 5, "arp@2": 3.0, "aplt@2": 0.0,
                              "gini@2": (0 * -4 + 0 * -2 + 0 * 0 + 4 * 2 + 4 * 4) / (5 * 8)})


def test_empty_list_counts_as_zero():
    # user 1 trained on every item but item 1 is also its test item (a warned overlap):
    # no candidate at all, an empty list, 0 for the per-user metrics
    train = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 1]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0], [0, 1, 0]], dtype=np.float32))
    with pytest.warns(RuntimeWarning, match="never be hit"):
        got = evaluate((np.ones((2, 1)), np.ones((3, 1))), train, test, k=[2],
                       protocol="holdout", per_user=True, beyond_accuracy=True)
    # user 0's list is [1, 2]: popularity [1, 1], head = {0, 1, 2} (threshold 1)
    np.testing.assert_array_equal(got["per_user"]["arp@2"], [1.0, 0.0])
    np.testing.assert_array_equal(got["per_user"]["novelty@2"], [1.0, 0.0])
    assert got["coverage@2"] == 2 / 3


def test_head_threshold_keeps_ties_together():
    # 10 interactions spread evenly: the first item reaches 20 %, and all share its
    # popularity, so all are in the head (an index-based cut would keep item 0 only)
    train = sp.csr_matrix(np.tile(np.eye(5, dtype=np.float32), (2, 1)))
    test = sp.csr_matrix(np.tile(np.roll(np.eye(5, dtype=np.float32), 1, axis=1), (2, 1)))
    got = evaluate((np.ones((10, 1)), np.ones((5, 1))), train, test, k=[1, 4],
                   protocol="holdout", beyond_accuracy=True)
    assert got["aplt@1"] == 0.0 and got["aplt@4"] == 0.0


@pytest.mark.parametrize("pops, head", [
    ([2, 1, 1, 1, 1, 1, 1, 1, 1], [0]),           # exactly 20 % is reached by item 0
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ([1, 3, 0, 3, 2, 2, 3], [1, 3, 6]),           # 3 of 14 < 20 %, 6 of 14 > 20 %: t = 3
    ([0, 0, 5, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [2]),
    ([0, 0, 0], []),                              # no interactions: no head
])
def test_head_by_hand(pops, head):
    from aprnb.evaluation._beyond import short_head
    assert np.flatnonzero(short_head(np.array(pops))).tolist() == head
    assert sorted(brute_head(pops)) == head


@settings(max_examples=200, deadline=None)
@given(pops=st.lists(st.integers(0, 6), min_size=1, max_size=12), seed=st.integers(0, 99))
def test_head_is_brute_force_and_ignores_item_ids(pops, seed):
    from aprnb.evaluation._beyond import short_head
    pop = np.array(pops, dtype=np.int64)
    head = short_head(pop)
    assert set(np.flatnonzero(head).tolist()) == brute_head(pops)
    perm = np.random.default_rng(seed).permutation(len(pop))
    np.testing.assert_array_equal(short_head(pop[perm]), head[perm])


@settings(max_examples=20, deadline=None)
@given(loo=st.booleans(), data=st.data())
def test_independent_of_threads_and_block_size(loo, data):
    P, Q, train, test, ks, users = data.draw(problems(loo))
    block = data.draw(st.integers(1, train.shape[0] + 1))
    kw = dict(k=ks, protocol="loo" if loo else "holdout", users=users, per_user=True,
              beyond_accuracy=True)
    ref = evaluate((P, Q), train, test, n_threads=1, block_size=train.shape[0], **kw)
    got = evaluate((P, Q), train, test, n_threads=2, block_size=block, **kw)
    assert_identical(got, ref)


@pytest.mark.parametrize("protocol", ["holdout", "loo"])
def test_independent_of_threads_continuous_scores(synthetic_loo, protocol):
    train, test = synthetic_loo
    rng = np.random.default_rng(1)
    P = rng.standard_normal((train.shape[0], 8)).astype(np.float32)
    Q = rng.standard_normal((train.shape[1], 8)).astype(np.float32)
    kw = dict(k=[1, 10, 50], protocol=protocol, per_user=True, beyond_accuracy=True)
    ref = evaluate((P, Q), train, test, n_threads=1, **kw)
    for block, threads in [(1, 2), (37, 2), (1000, 1)]:
        assert_identical(evaluate((P, Q), train, test, n_threads=threads, block_size=block,
                                  **kw), ref)


def assert_identical(got, ref):
    assert set(got) == set(ref)
    for key, v in ref.items():
        if key == "per_user":
            assert set(got[key]) == set(v)
            for m, arr in v.items():
                np.testing.assert_array_equal(got[key][m], arr, err_msg=m)
        elif key == "users":
            np.testing.assert_array_equal(got[key], v)
        else:
            assert got[key] == v or (np.isnan(v) and np.isnan(got[key])), key


# -- arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [1, 0, "yes", None, [True]])
def test_flag_must_be_bool(bad):
    P, Q, train, test = hand_case()
    with pytest.raises(TypeError, match="beyond_accuracy must be True or False"):
        evaluate((P, Q), train, test, beyond_accuracy=bad)


def test_sampled_refused_with_a_reason():
    P, Q, train, test = hand_case()
    neg = np.tile(np.arange(5), (4, 1))
    with pytest.raises(ValueError, match="full ranking.*protocol='loo'"):
        evaluate((P, Q), train, test, negatives=neg, beyond_accuracy=True)
    ds = Dataset(train=train, test=test, negatives=neg)
    with pytest.raises(ValueError, match="no top-K list"):
        evaluate((P, Q), ds, beyond_accuracy=np.True_)
    got = evaluate((P, Q), ds, k=[1, 5], protocol="loo", beyond_accuracy=True)
    assert got["gini@5"] == pytest.approx(18 / 65, rel=TOL)
    assert "novelty@5" not in evaluate((P, Q), ds, k=5, beyond_accuracy=False)
