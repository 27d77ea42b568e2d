"""Uniform negative sampling: hashed filter of the positives, exact rejection, rank selection."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from aprnb import BPR, evaluate
from aprnb.kernels import sample_negatives
from aprnb.kernels._rng import seed_states
from aprnb._threads import numba_threads
from aprnb.kernels.sampling import (PARALLEL_FILL, _fill_parallel, _fill_serial,
                                    build_filter, filter_words, maybe_positive)


def state(seed):
    return seed_states(np.random.default_rng(seed), 1)


def csr_rows(rows, n_items):
    """Sorted, duplicate-free CSR arrays from a list of item lists."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(set(r)) for r in rows])
    indices = np.concatenate([np.sort(np.unique(np.asarray(r, dtype=np.int64)))
                              for r in rows] or [np.zeros(0, np.int64)]).astype(np.int64)
    return indptr, indices


@st.composite
def rows_and_users(draw):
    n_items = draw(st.integers(1, 60))
    n_rows = draw(st.integers(1, 6))
    rows = [draw(st.lists(st.integers(0, n_items - 1), unique=True, max_size=n_items))
            for _ in range(n_rows)]
    users = draw(st.lists(st.integers(0, n_rows - 1), min_size=1, max_size=200))
    return rows, n_items, np.asarray(users, dtype=np.int64)


@settings(max_examples=150)
@given(case=rows_and_users(), seed=st.integers(0, 2**32 - 1),
       idx=st.sampled_from([np.int32, np.int64]))
def test_never_returns_an_interacted_item(case, seed, idx):
    rows, n_items, users = case
    indptr, indices = csr_rows(rows, n_items)
    out = sample_negatives(indptr.astype(idx), indices.astype(idx), users.astype(idx),
                           n_items, state(seed))
    assert out.shape == users.shape
    for u, j in zip(users, out):
        if len(set(rows[u])) == n_items:
            assert j == -1
        else:
            assert 0 <= j < n_items
            assert j not in rows[u]


def test_full_row_returns_minus_one():
    indptr, indices = csr_rows([list(range(7)), [1, 3]], 7)
    out = sample_negatives(indptr, indices, np.array([0, 0, 1, 0]), 7, state(0))
    assert out[0] == out[1] == out[3] == -1
    assert out[2] in (0, 2, 4, 5, 6)


def test_empty_row_samples_every_item():
    indptr, indices = csr_rows([[]], 5)
    out = sample_negatives(indptr, indices, np.zeros(2000, dtype=np.int64), 5, state(1))
    assert set(out.tolist()) == set(range(5))


@pytest.mark.parametrize("row,n_items", [
    ([0, 3, 4, 5, 9, 17, 18, 19], 20),   # gaps at the ends and in the middle
    ([1, 2, 3, 4, 5, 6, 7, 8], 10),       # two free items at the ends only
    (list(range(0, 40, 2)), 41),         # every other item
])
def test_uniform_over_free_items(row, n_items):
    """Chi-square goodness of fit against the uniform law on the free items (fixed seed).

    With a correct sampler the p-value is uniform on [0, 1]; a threshold of 1e-4
    fails a correct sampler once in 10,000 seeds, while a sampler that favours one
    free item by 10% (about 14 standard deviations at 20,000 draws per item) fails.
    """
    indptr, indices = csr_rows([row], n_items)
    free = np.setdiff1d(np.arange(n_items), row)
    n = 20000 * len(free)
    out = sample_negatives(indptr, indices, np.zeros(n, dtype=np.int64), n_items, state(42))
    assert not np.isin(out, row).any()
    counts = np.bincount(out, minlength=n_items)[free]
    assert counts.sum() == n
    stat, p = chisquare(counts)
    assert p > 1e-4, (stat, p, counts)


def test_seeded_sampling_is_reproducible():
    indptr, indices = csr_rows([[1, 5, 7], [0]], 50)
    users = np.array([0, 1] * 100)
    a = sample_negatives(indptr, indices, users, 50, state(3))
    b = sample_negatives(indptr, indices, users, 50, state(3))
    c = sample_negatives(indptr, indices, users, 50, state(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@settings(max_examples=60, deadline=None)
@given(n_users=st.integers(1, 40), n_items=st.integers(1, 300), density=st.floats(0, 0.6),
       seed=st.integers(0, 2**32 - 1))
def test_filter_has_no_false_negatives(n_users, n_items, density, seed):
    rng = np.random.default_rng(seed)
    X = sp.random(n_users, n_items, density=density, format="csr", random_state=rng)
    X.sort_indices()
    filt = build_filter(X.indptr, X.indices, n_items)
    assert len(filt) >= filter_words(X.nnz) and len(filt) & (len(filt) - 1) == 0
    for u in range(n_users):
        row = X.indices[X.indptr[u]:X.indptr[u + 1]]
        # a dense row (more than half of the items) alarms for every item
        items = range(n_items) if 2 * len(row) > n_items else row
        for i in items:
            assert maybe_positive(filt, u, i, n_items)


@settings(max_examples=80, deadline=None)
@given(case=rows_and_users(), seed=st.integers(0, 2**32 - 1))
def test_filter_changes_speed_not_results(case, seed):
    # A filter that raises an alarm for every pair sends every draw to the exact
    # row search; the draws must be the same as with the real filter, which skips
    # the search only for items that are certainly not positives.
    rows, n_items, users = case
    indptr, indices = csr_rows(rows, n_items)
    always = np.full(1, np.iinfo(np.uint64).max, dtype=np.uint64)
    a = sample_negatives(indptr, indices, users, n_items, state(seed))
    b = sample_negatives(indptr, indices, users, n_items, state(seed), filt=always)
    np.testing.assert_array_equal(a, b)


def reference_filter(indptr, indices, n_items):
    """The filter in plain NumPy: every pair hashed at once, bits set with ``bitwise_or.at``.

    Written from the docstrings of ``filter_slot`` and ``mix64`` (SplitMix64's
    scramble of ``(u * n_items + j) * 0x9E3779B97F4A7C15``; word = high 32 bits
    masked to the table, two bits from the low 12), not from the kernel.
    """
    u64 = np.uint64
    deg = np.diff(indptr)
    dense = 2 * deg > n_items
    keys = int(np.where(dense, n_items, deg).sum())
    n_words = 1 << max(0, int(np.ceil(np.log2(max(1, keys) / 4))))
    users = np.repeat(np.arange(len(deg)), np.where(dense, n_items, deg))
    items = np.concatenate([np.arange(n_items) if dense[u] else indices[indptr[u]:indptr[u + 1]]
                            for u in range(len(deg))] + [np.zeros(0, np.int64)])
    z = (users.astype(u64) * u64(n_items) + items.astype(u64)) * u64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    h = z ^ (z >> u64(31))
    filt = np.zeros(n_words, dtype=u64)
    np.bitwise_or.at(filt, ((h >> u64(32)) & u64(n_words - 1)).astype(np.int64),
                     (u64(1) << (h & u64(63))) | (u64(1) << ((h >> u64(6)) & u64(63))))
    return filt


@st.composite
def random_csr(draw):
    """Random CSR arrays with sorted rows; some rows dense (more than half the items)."""
    n_items = draw(st.integers(1, 120))
    rows = draw(st.lists(st.one_of(
        st.lists(st.integers(0, n_items - 1), unique=True, max_size=min(n_items, 40)),
        st.sets(st.integers(0, n_items - 1), min_size=n_items // 2 + 1,
                max_size=n_items).map(list)), min_size=1, max_size=30))
    return csr_rows(rows, n_items) + (n_items,)


@settings(max_examples=100, deadline=None)
@given(case=random_csr(), parts=st.integers(1, 7), idx=st.sampled_from([np.int32, np.int64]),
       fill=st.sampled_from([_fill_serial, _fill_parallel]))
def test_filter_equals_the_numpy_reference_for_any_split(case, parts, idx, fill):
    # The users are cut into ``parts`` runs of about equal numbers of keys, one per
    # thread; every split (including more parts than users) must set exactly the
    # reference's bits.
    indptr, indices, n_items = case
    ref = reference_filter(indptr, indices, n_items)
    filt = np.zeros_like(ref)
    fill(filt, indptr.astype(idx), indices.astype(idx), n_items, parts)
    np.testing.assert_array_equal(filt, ref)


@pytest.mark.parametrize("threads", [1, 2])
def test_build_filter_is_the_reference_on_one_and_two_threads(threads):
    rng = np.random.default_rng(3)
    X = sp.random(3000, 1000, density=0.03, format="csr", random_state=rng)
    X.sort_indices()
    assert X.nnz >= PARALLEL_FILL                           # the parallel fill runs
    ref = reference_filter(X.indptr, X.indices, 1000)
    with numba_threads(threads):
        filt = build_filter(X.indptr, X.indices, 1000)
    np.testing.assert_array_equal(filt, ref)
    assert ref.sum() > 0


@pytest.mark.parametrize("filt,err", [
    (np.zeros(4, dtype=np.int64), TypeError),                 # wrong dtype
    (np.zeros((2, 2), dtype=np.uint64), TypeError),           # not 1-D
    ([0, 0], TypeError),                                      # not an array
    (np.zeros(3, dtype=np.uint64), ValueError),               # not a power of two
    (np.zeros(0, dtype=np.uint64), ValueError),               # empty
])
def test_sample_negatives_rejects_a_malformed_filter(filt, err):
    indptr, indices = csr_rows([[1, 2]], 5)
    with pytest.raises(err, match="filt"):
        sample_negatives(indptr, indices, np.zeros(3, dtype=np.int64), 5, state(0), filt=filt)


def test_filter_false_alarm_rate_is_small():
    rng = np.random.default_rng(0)
    X = sp.random(2000, 5000, density=0.01, format="csr", random_state=rng)
    X.sort_indices()
    filt = build_filter(X.indptr, X.indices, 5000)
    us = rng.integers(0, 2000, 50000)
    js = rng.integers(0, 5000, 50000)
    dense = X.toarray() > 0
    negatives = ~dense[us, js]
    alarms = np.array([maybe_positive(filt, u, j, 5000) for u, j in zip(us, js)])
    assert alarms[~negatives].all()
    assert alarms[negatives].mean() < 0.03          # about 1.3% by design


# -- the models with degenerate rows --------------------------------------------------------------
def full_row_data():
    rng = np.random.default_rng(0)
    A = (rng.random((30, 12)) < 0.3).astype(np.float32)
    A[:, 0] = 1                 # every user has at least one item
    A[4, :] = 1                 # user 4 interacted with every item
    return sp.csr_matrix(A)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_fit_with_full_row_warns_and_terminates(n_threads, batch_size):
    X = full_row_data()
    model = BPR(factors=4, epochs=3, n_threads=n_threads, batch_size=batch_size,
                random_state=0, show_progress=False)
    with pytest.warns(RuntimeWarning, match="every item"):
        model.fit(X)
    assert np.all(np.isfinite(model.user_factors_))
    assert len(model.history_) == 3


def test_fit_with_users_without_interactions():
    rng = np.random.default_rng(1)
    A = (rng.random((25, 15)) < 0.3).astype(np.float32)
    A[[0, 7, 24], :] = 0        # empty users, including the first and the last row
    A[1:7, 3] = 1
    X = sp.csr_matrix(A)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = BPR(factors=4, epochs=3, n_threads=1, random_state=0,
                    show_progress=False).fit(X)
    assert model.user_factors_.shape == (25, 4)
    assert np.all(np.isfinite(model.user_factors_))
    items, _ = model.recommend([0, 7, 24], k=5, exclude=X)
    assert np.all(items >= 0)
    # empty users have no test items: skipped (test = train only to count the users)
    res = evaluate(model, X, X, k=[5], check_split=False, exclude_train=False)
    assert res["n_users"] == 22
