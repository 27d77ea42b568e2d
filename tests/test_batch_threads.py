"""The mini-batch kernel on several slices and threads (``aprnb/kernels/batch.py``).

``batch_serial`` runs the slices of an epoch one after another, ``batch_parallel``
runs them on Numba threads (Hogwild over mini-batches). On one thread the two
must agree bit for bit, and with one slice they are the serial mini-batch
epoch that ``test_kernels.py`` checks against the NumPy reference.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import aprnb
from aprnb._threads import numba_threads
from aprnb.kernels._rng import STRIDE, seed_states
from aprnb.kernels.batch import batch_parallel, batch_serial
from test_kernels import csr_case, run_kernel

FEW = settings(max_examples=30, deadline=None)


def _with_states(c, n_chunks, seed):
    return dict(c, states=seed_states(np.random.default_rng(seed), n_chunks))


def _assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@FEW
@given(csr_case(n_users=(2, 6), n_items=(3, 8)), st.sampled_from([0, 1, 2]), st.booleans(),
       st.integers(1, 3), st.integers(2, 5), st.booleans(), st.integers(0, 2**32 - 1))
def test_batch_parallel_on_one_thread_equals_batch_serial(c, mode, adagrad, n_chunks, B,
                                                          shuffle, seed):
    c = _with_states(c, n_chunks, seed)
    serial = run_kernel(batch_serial, c, mode, adagrad, n_chunks=n_chunks, batch_size=B,
                        shuffle=shuffle)
    with numba_threads(1):
        parallel = run_kernel(batch_parallel, c, mode, adagrad, n_chunks=n_chunks,
                              batch_size=B, shuffle=shuffle)
    assert serial[6] == parallel[6] > 0
    assert serial[5] == parallel[5]                       # the loss, bit for bit
    _assert_same(serial[:5], parallel[:5])                # P, Q, GP, GQ, states


@FEW
@given(csr_case(n_users=(2, 6), n_items=(3, 8)), st.sampled_from([0, 1, 2]), st.booleans(),
       st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_each_slice_is_a_serial_batch_epoch_with_its_own_streams(c, mode, adagrad, B, seed):
    """Two slices = the one-slice epoch on the first half of the pairs (streams of
    block 0), then on the second half (streams of block 1)."""
    c = _with_states(c, 2, seed)
    got = run_kernel(batch_serial, c, mode, adagrad, n_chunks=2, batch_size=B)
    P, Q, GP, GQ, states = (c[k].copy() for k in ("P", "Q", "GP", "GQ", "states"))
    users, items = c["pos_users"][c["order"]], c["pos_items"][c["order"]]
    from aprnb.kernels.sampling import build_filter
    filt = build_filter(c["indptr"], c["indices"], c["n_items"])
    n = len(users)
    loss, count = 0.0, 0
    for t, (lo, hi) in enumerate([(0, n // 2), (n // 2, n)]):
        part_loss, part_count = batch_serial(
            P, Q, GP, GQ, filt, c["indptr"], c["indices"], users[lo:hi], items[lo:hi],
            states[t * STRIDE:], c["lr"], c["reg"], c["eps"], c["reg_adv"], mode, adagrad, 1,
            batch_size=B)
        loss, count = loss + part_loss, count + part_count
    assert got[6] == count
    np.testing.assert_allclose(got[5], loss, rtol=1e-12)  # two partial sums, added once
    _assert_same(got[:5], (P, Q, GP, GQ, states))


@settings(max_examples=10, deadline=None)
@given(csr_case(full_row=False, n_users=(4, 8), n_items=(5, 10)), st.sampled_from([0, 1, 2]),
       st.booleans())
def test_batch_parallel_two_slices_trains_on_every_pair(c, mode, adagrad):
    P, Q, GP, GQ, states, loss, count = run_kernel(batch_parallel, c, mode, adagrad,
                                                   n_chunks=2, batch_size=3)
    assert count == len(c["pos_users"])
    assert np.isfinite(loss) and loss > 0
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(Q))
    assert not np.array_equal(Q, c["Q"])
    assert states[0] != c["states"][0] and states[STRIDE] != c["states"][STRIDE]


def test_mini_batch_fit_on_one_thread_replays_the_slices(small_synthetic):
    """A mini-batch fit honours ``n_slices`` and is reproducible on one thread; with
    ``n_threads=2`` on one Numba thread it is that replay, bit for bit."""
    import numba
    kw = dict(factors=4, epochs=2, random_state=0, batch_size=16, show_progress=False,
              init_std=0.1)
    one = aprnb.APR(n_threads=1, n_slices=2, **kw).fit(small_synthetic)
    again = aprnb.APR(n_threads=1, n_slices=2, **kw).fit(small_synthetic)
    single = aprnb.APR(n_threads=1, **kw).fit(small_synthetic)
    np.testing.assert_array_equal(one.item_factors_, again.item_factors_)
    assert not np.array_equal(one.item_factors_, single.item_factors_)
    two = aprnb.APR(n_threads=2, **kw).fit(small_synthetic)
    assert np.all(np.isfinite(two.item_factors_))
    if numba.config.NUMBA_NUM_THREADS == 1:
        np.testing.assert_array_equal(two.item_factors_, one.item_factors_)
