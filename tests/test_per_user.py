"""``evaluate(..., per_user=True)``: the per-user values behind every mean.

The contract: ``np.mean(res["per_user"][m]) == res[m]`` bitwise for every metric
and protocol, the means do not change with the flag, and ``res["users"]`` (int64,
ascending) is aligned with the arrays.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb import evaluate
from aprnb.data import Dataset
from aprnb.evaluation import metric_names

GLOBAL = ("coverage", "gini")


def random_factors(train, seed=0, d=8):
    """Continuous factors: the means sum many distinct values (pairwise summation)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((train.shape[0], d)),
            rng.standard_normal((train.shape[1], d)).astype(np.float64))


def negatives_for(train, n_neg=50, seed=0):
    return np.random.default_rng(seed).integers(-1, train.shape[1], size=(train.shape[0], n_neg))


def scalars(res):
    return {k: v for k, v in res.items() if k not in ("users", "per_user")}


def assert_means_are_per_user_means(res, names):
    per = res["per_user"]
    assert set(per) == set(names)
    for m in names:
        assert per[m].dtype == np.float64 and per[m].shape == res["users"].shape, m
        assert np.mean(per[m]) == res[m], (m, np.mean(per[m]), res[m])     # bitwise


@pytest.mark.parametrize("protocol", ["holdout", "loo", "sampled"])
def test_means_bitwise_and_unchanged_by_flag(synthetic_loo, protocol):
    train, test = synthetic_loo
    P, Q = random_factors(train)
    ks = [1, 10, 100]
    neg = negatives_for(train) if protocol == "sampled" else None
    beyond = protocol != "sampled"
    res = evaluate((P, Q), train, test, k=ks, protocol=protocol, negatives=neg,
                   per_user=True, beyond_accuracy=beyond)
    plain = evaluate((P, Q), train, test, k=ks, protocol=protocol, negatives=neg,
                     beyond_accuracy=beyond)
    assert scalars(res) == plain
    assert res["n_users"] == len(res["users"]) > 100
    names = [m for m in plain if m != "n_users" and m.split("@")[0] not in GLOBAL]
    assert set(metric_names(protocol, ks)) <= set(names)
    assert_means_are_per_user_means(res, names)


@pytest.mark.parametrize("protocol", [None, "loo", "holdout"])
def test_with_a_dataset(synthetic_loo, protocol):
    train, test = synthetic_loo
    ds = Dataset(train=train, test=test, negatives=negatives_for(train, seed=1))
    P, Q = random_factors(train, seed=2)
    res = evaluate((P, Q), ds, k=[5, 20], protocol=protocol, per_user=True)
    assert scalars(res) == evaluate((P, Q), ds, k=[5, 20], protocol=protocol)
    assert_means_are_per_user_means(res, [m for m in res if "@" in m or m == "auc"])


def test_users_ascending_and_aligned(synthetic_loo):
    train, test = synthetic_loo
    P, Q = random_factors(train, seed=3)
    chosen = np.random.default_rng(4).permutation(train.shape[0])[:40]   # unsorted
    for protocol in ("holdout", "loo"):
        kw = dict(k=[3, 30], protocol=protocol, beyond_accuracy=True)
        res = evaluate((P, Q), train, test, users=chosen, per_user=True, **kw)
        users = res["users"]
        assert users.dtype == np.int64
        np.testing.assert_array_equal(users, np.sort(chosen[test.getnnz(axis=1)[chosen] > 0]))
        # the order the users are given in does not matter, bitwise
        assert scalars(res) == evaluate((P, Q), train, test, users=np.sort(chosen), **kw)
        for j in (0, len(users) // 2, len(users) - 1):
            one = evaluate((P, Q), train, test, users=[users[j]], **kw)
            for m, arr in res["per_user"].items():
                assert arr[j] == one[m], (protocol, m, j)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 30), n_items=st.integers(1, 12),
       protocol=st.sampled_from(["holdout", "loo", "sampled"]), block=st.integers(1, 8))
def test_random_small_problems(seed, n_users, n_items, protocol, block):
    rng = np.random.default_rng(seed)
    cell = rng.choice(3, size=(n_users, n_items), p=[0.5, 0.3, 0.2])
    test = cell == 2
    if protocol != "holdout":                # one test item per user
        test &= np.cumsum(test, axis=1) == 1
    train, test = (sp.csr_matrix(x.astype(np.float32)) for x in (cell == 1, test))
    P = rng.standard_normal((n_users, 3))
    Q = rng.standard_normal((n_items, 3))
    neg = rng.integers(-1, n_items, size=(n_users, 4)) if protocol == "sampled" else None
    kw = dict(k=[1, n_items + 2], protocol=protocol, negatives=neg,
              beyond_accuracy=protocol != "sampled")
    res = evaluate((P, Q), train, test, per_user=True, n_threads=2, block_size=block, **kw)
    ref = evaluate((P, Q), train, test, n_threads=1, **kw)
    assert json_like(scalars(res)) == json_like(ref)
    names = [m for m in ref if m != "n_users" and m.split("@")[0] not in GLOBAL]
    if res["n_users"]:
        assert_means_are_per_user_means(res, names)
    else:
        assert all(res["per_user"][m].shape == (0,) for m in names)
        assert all(np.isnan(res[m]) for m in names)


def json_like(d):
    """NaN-aware equality of dicts of floats: NaN compared as a string."""
    return {k: ("nan" if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


@pytest.mark.parametrize("bad", [1, 0, "yes", None, [True]])
def test_flag_must_be_bool(bad):
    train = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32))
    with pytest.raises(TypeError, match="per_user must be True or False"):
        evaluate((np.ones((2, 1)), np.ones((3, 1))), train, test, per_user=bad)
    res = evaluate((np.ones((2, 1)), np.ones((3, 1))), train, test, per_user=np.True_)
    assert "per_user" in res and "users" in res
