"""Data splitters (leave-one-out, holdout, validation, merge) and the synthetic generator."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from aprnb import data as D
from aprnb.data import (Interactions, holdout_split, leave_one_out, load_delimited, make_synthetic,
                        merge, validation_split)
from aprnb.reference import as_csr, items_of, pairs
from checks import (NAN, assert_unchanged, interactions, snapshot, write)


def dense(M):
    return np.asarray(M.todense())


# -- splitters ------------------------------------------------------------------------------------
def random_matrix(seed, n_users=40, n_items=30, density=0.2):
    rng = np.random.default_rng(seed)
    A = (rng.random((n_users, n_items)) < density).astype(np.float32)
    return sp.csr_matrix(A)


def check_partition(M, train, test):
    """train and test are disjoint binary CSR matrices whose union is M."""
    assert train.shape == test.shape == M.shape
    assert sp.isspmatrix_csr(train) and sp.isspmatrix_csr(test)
    tr, te, full = pairs(train), pairs(test), pairs(M)
    assert not tr & te
    assert tr | te == full
    for X in (train, test):
        assert X.nnz == 0 or set(np.unique(X.data)) == {1.0}


def check_loo(M, train, test):
    check_partition(M, train, test)
    deg = np.diff(as_csr(M).indptr)
    n_test = np.diff(test.indptr)
    np.testing.assert_array_equal(n_test, (deg >= 2).astype(int))


def test_leave_one_out_basic():
    M = random_matrix(0)
    train, test = leave_one_out(M, random_state=0)
    check_loo(M, train, test)


def test_leave_one_out_user_with_single_or_no_interaction(tiny):
    M = tiny.tolil()
    M[1, :] = 0
    M[1, 4] = 1
    M = sp.csr_matrix(M)
    train, test = leave_one_out(M, random_state=3)
    check_loo(M, train, test)
    assert items_of(train, 1).tolist() == [4] and items_of(test, 1).tolist() == []
    assert test[3].nnz == 0 and train[3].nnz == 0


def test_leave_one_out_reproducible_and_seed_dependent():
    M = random_matrix(1, 200, 50)
    a = leave_one_out(M, random_state=7)
    b = leave_one_out(M, random_state=7)
    c = leave_one_out(M, random_state=8)
    assert pairs(a[1]) == pairs(b[1])
    assert pairs(a[1]) != pairs(c[1])
    g1 = leave_one_out(M, random_state=np.random.default_rng(5))
    g2 = leave_one_out(M, random_state=np.random.default_rng(5))
    assert pairs(g1[1]) == pairs(g2[1])


def test_leave_one_out_accepts_dense_and_interactions():
    M = random_matrix(2, 15, 12, 0.4)
    train, test = leave_one_out(M.toarray(), random_state=0)
    check_loo(M, train, test)
    C = M.tocoo()
    log = Interactions(users=C.row.astype(np.int64), items=C.col.astype(np.int64),
                       values=None, timestamps=None, user_ids=np.arange(15),
                       item_ids=np.arange(12))
    train, test = leave_one_out(log, random_state=0)
    check_loo(M, train, test)


def test_leave_one_out_latest_timestamp():
    # user 0: item 2 latest; user 1: item 0 seen at t=1 and again at t=9 (latest);
    # user 2: a single item (stays in train); user 3: two items at the same latest time.
    users = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3])
    items = np.array([0, 1, 2, 0, 1, 2, 0, 3, 0, 1, 2])
    ts = np.array([5, 3, 8, 1, 4, 6, 9, 2, 7, 7, 1], dtype=np.float64)
    log = Interactions(users=users, items=items, values=None, timestamps=ts,
                       user_ids=np.arange(4), item_ids=np.arange(4))
    train, test = leave_one_out(log, random_state=0)
    check_loo(log.to_csr(), train, test)
    assert items_of(test, 0).tolist() == [2]
    assert items_of(test, 1).tolist() == [0]
    assert items_of(test, 2).tolist() == []
    assert items_of(test, 3).tolist() in ([0], [1])
    picks = {items_of(leave_one_out(log, random_state=s)[1], 3)[0] for s in range(30)}
    assert picks == {0, 1}                                     # ties broken at random
    again = leave_one_out(log, random_state=0)
    assert pairs(again[1]) == pairs(test)


def test_leave_one_out_latest_from_file(tmp_path):
    p = write(tmp_path / "log.csv", "u,i,r,t\nann,a,1,100\nann,b,1,300\nann,c,1,200\n"
                                    "ben,a,1,50\nben,c,1,20\n")
    ds = load_delimited(p, header=True)
    train, test = leave_one_out(ds.interactions, random_state=0)
    assert [ds.item_ids[i] for i in test.indices] == ["b", "a"]
    check_loo(ds.train, train, test)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.8])
def test_holdout_split_fraction(fraction):
    M = random_matrix(3, 300, 60, 0.15)
    train, test = holdout_split(M, test_fraction=fraction, random_state=0)
    check_partition(M, train, test)
    deg = np.diff(M.indptr)
    expected = np.clip(np.round(fraction * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(test.indptr), expected)
    assert np.all(np.diff(train.indptr)[deg > 0] >= 1)
    assert abs(test.nnz / M.nnz - fraction) < 0.05


def test_holdout_split_reproducible_and_seed_dependent():
    M = random_matrix(4, 100, 40, 0.3)
    a = holdout_split(M, 0.3, random_state=1)
    b = holdout_split(M, 0.3, random_state=1)
    c = holdout_split(M, 0.3, random_state=2)
    assert pairs(a[1]) == pairs(b[1]) and pairs(a[0]) == pairs(b[0])
    assert pairs(a[1]) != pairs(c[1])


def test_validation_split():
    M = random_matrix(5, 80, 40, 0.25)
    train, test = holdout_split(M, 0.2, random_state=0)
    fit_part, val = validation_split(train, protocol="loo", random_state=0)
    check_loo(train, fit_part, val)
    assert not pairs(val) & pairs(test)
    fit_part, val = validation_split(train, protocol="holdout", test_fraction=0.25,
                                     random_state=0)
    check_partition(train, fit_part, val)
    deg = np.diff(train.indptr)
    expected = np.clip(np.round(0.25 * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(val.indptr), expected)
    a = validation_split(train, random_state=3)[1]
    b = validation_split(train, random_state=3)[1]
    assert pairs(a) == pairs(b)
    with pytest.raises(ValueError, match="protocol"):
        validation_split(train, protocol="kfold")


def test_merge_is_union():
    M = random_matrix(6)
    train, test = holdout_split(M, 0.3, random_state=0)
    U = merge(train, test)
    assert pairs(U) == pairs(M)
    assert set(np.unique(U.data)) == {1.0}
    assert pairs(merge(M, M)) == pairs(M)
    with pytest.raises(ValueError):
        merge(M, sp.csr_matrix((3, 3)))


@st.composite
def sparse_matrices(draw):
    n_users = draw(st.integers(1, 25))
    n_items = draw(st.integers(1, 25))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = (rng.random((n_users, n_items)) < density).astype(np.float32)
    if not A.any():
        A[rng.integers(n_users), rng.integers(n_items)] = 1.0
    fmt = draw(st.sampled_from(["csr", "csc", "coo", "dense"]))
    return A if fmt == "dense" else sp.csr_matrix(A).asformat(fmt)


@settings(max_examples=60)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31))
def test_property_leave_one_out(M, seed):
    train, test = leave_one_out(M, random_state=seed)
    check_loo(sp.csr_matrix(M), train, test)
    again = leave_one_out(M, random_state=seed)
    assert pairs(again[1]) == pairs(test)


@settings(max_examples=60)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31), fraction=st.floats(0.01, 0.99))
def test_property_holdout_split(M, seed, fraction):
    train, test = holdout_split(M, test_fraction=fraction, random_state=seed)
    C = as_csr(M)
    check_partition(C, train, test)
    deg = np.diff(C.indptr)
    expected = np.clip(np.round(fraction * deg).astype(int), 0, np.maximum(deg - 1, 0))
    np.testing.assert_array_equal(np.diff(test.indptr), expected)


@settings(max_examples=40)
@given(M=sparse_matrices(), seed=st.integers(0, 2**31),
       protocol=st.sampled_from(["loo", "holdout"]))
def test_property_validation_split(M, seed, protocol):
    fit_part, val = validation_split(M, protocol=protocol, random_state=seed)
    check_partition(as_csr(M), fit_part, val)


# -- synthetic generator --------------------------------------------------------------------------
def test_make_synthetic_shape_and_format():
    X = make_synthetic(n_users=300, n_items=120, n_groups=6, mean_degree=10, random_state=0)
    assert X.shape == (300, 120)
    assert sp.isspmatrix_csr(X) and X.has_sorted_indices
    assert set(np.unique(X.data)) == {1.0}
    assert X.nnz == len(pairs(X))                     # no duplicates
    assert np.all(np.diff(X.indptr) >= 1)


def test_make_synthetic_degree_at_least_three_as_documented():
    """The docstring promises degrees "at least 3" (so every user can be split)."""
    X = make_synthetic(random_state=0)
    assert np.diff(X.indptr).min() >= 3


def test_make_synthetic_seeded():
    a = make_synthetic(n_users=200, n_items=100, random_state=3)
    b = make_synthetic(n_users=200, n_items=100, random_state=3)
    c = make_synthetic(n_users=200, n_items=100, random_state=4)
    assert pairs(a) == pairs(b)
    assert pairs(a) != pairs(c)


def test_make_synthetic_popularity_is_skewed():
    X = make_synthetic(n_users=1000, n_items=200, popularity_exponent=1.0, random_state=0)
    counts = np.sort(np.asarray(X.sum(axis=0)).ravel())[::-1]
    assert counts[:20].sum() > 3 * counts[-20:].sum()


# -- bad inputs and reproducibility ------------------------------------------------------------
SPLITTERS = {
    "leave_one_out": lambda data, **kw: D.leave_one_out(data, **kw),
    "holdout_split": lambda data, **kw: D.holdout_split(data, **kw),
    "validation_split": lambda data, **kw: D.validation_split(data, **kw),
}


@pytest.mark.parametrize("name", sorted(SPLITTERS))
def test_splitters_bad_inputs(name, X):
    f = SPLITTERS[name]
    snap = snapshot(X)
    cases = [
        ((None,), {}, TypeError, "data: got NoneType"),
        (([(0, 1)],), {}, TypeError, "data: got list"),
        (("data.csv",), {}, TypeError, "data: got str"),
        ((-X,), {}, ValueError, "negative"),
        ((np.ones((2, 2, 2)),), {}, ValueError, "2-D"),
        ((np.zeros((3, 3)),), {}, ValueError, "no interactions"),
        ((X,), dict(random_state=-5), ValueError, "random_state"),
        ((X,), dict(random_state=1.5), TypeError, "random_state"),
    ]
    for args, kw, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            f(*args, **kw)
    assert_unchanged(X, snap)


@pytest.mark.parametrize("tf,exc", [(0, ValueError), (1, ValueError), (-0.1, ValueError),
                                    (1.5, ValueError), (NAN, ValueError), ("0.2", TypeError),
                                    (True, TypeError), (None, TypeError)])
def test_holdout_test_fraction_checked(tf, exc, X):
    with pytest.raises(exc, match="test_fraction"):
        D.holdout_split(X, test_fraction=tf)
    with pytest.raises(exc, match="test_fraction"):
        D.validation_split(X, protocol="holdout", test_fraction=tf)


def test_validation_split_and_merge_bad_inputs(X):
    with pytest.raises(ValueError, match="protocol must be 'loo' or 'holdout'"):
        D.validation_split(X, protocol="sampled")
    with pytest.raises(ValueError, match="at least one matrix"):
        D.merge()
    with pytest.raises(ValueError, match="matrix 1: shape"):
        D.merge(X, X[:5])
    with pytest.raises(ValueError, match="matrix 1: contains negative"):
        D.merge(X, -X)


@pytest.mark.parametrize("kw,exc,fragment", [
    (dict(n_users=0), ValueError, "n_users"), (dict(n_items=1), ValueError, "n_items"),
    (dict(n_groups=0), ValueError, "n_groups"), (dict(n_groups=50, n_items=10), ValueError,
                                                 "n_groups"),
    (dict(mean_degree=0), ValueError, "mean_degree"),
    (dict(group_affinity=1.5), ValueError, "group_affinity"),
    (dict(group_affinity=NAN), ValueError, "group_affinity"),
    (dict(popularity_exponent=-1), ValueError, "popularity_exponent"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(n_users=True), TypeError, "n_users"), (dict(n_users=2.0), TypeError, "n_users"),
])
def test_make_synthetic_bad_arguments(kw, exc, fragment):
    with pytest.raises(exc, match=fragment):
        D.make_synthetic(**kw)


def test_splitters_are_reproducible_from_the_seed(X):
    for f in (D.leave_one_out, lambda M, random_state: D.holdout_split(M, 0.3, random_state)):
        a, b, c = (f(X, random_state=s) for s in (5, 5, 6))
        assert (a[0] != b[0]).nnz == 0 and (a[1] != b[1]).nnz == 0
        assert (a[1] != c[1]).nnz > 0


@settings(max_examples=60, deadline=None)
@given(M=interactions(), seed=st.integers(0, 2**32 - 1),
       fraction=st.floats(0.05, 0.95), which=st.sampled_from(["loo", "holdout"]))
def test_property_splitters_partition_the_data(M, seed, fraction, which):
    snap = snapshot(M)
    if which == "loo":
        tr, te = D.leave_one_out(M, random_state=seed)
    else:
        tr, te = D.holdout_split(M, fraction, random_state=seed)
    assert_unchanged(M, snap)
    assert tr.shape == te.shape == M.shape
    assert tr.multiply(te).nnz == 0                       # disjoint
    assert ((tr + te) != (M != 0)).nnz == 0               # nothing lost, nothing added
    deg, tr_deg, te_deg = (np.diff(A.tocsr().indptr) for A in (M, tr, te))
    assert np.all(tr_deg[deg > 0] >= 1)                   # everybody keeps a train item
    assert np.all(te_deg[deg < 2] == 0)
    if which == "loo":
        assert np.array_equal(te_deg, (deg >= 2).astype(te_deg.dtype))
    again = (D.leave_one_out(M, random_state=seed) if which == "loo"
             else D.holdout_split(M, fraction, random_state=seed))
    assert (again[1] != te).nnz == 0
