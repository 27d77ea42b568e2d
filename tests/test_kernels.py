"""The Numba kernels against the plain-NumPy reference (aprnb/reference.py).

float64 kernels must agree with the reference to rounding; float32 kernels to
float32 accuracy (they compute in the dtype of ``P`` with reassoc/contract
fast-math). Rows that a step does not touch must come back bit-for-bit unchanged.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aprnb import reference as ref
from checks import large_margin_triple
from aprnb.kernels import (MODE_APR, MODE_VAT, apr_step, apr_step_adagrad, apr_step_given,
                           bpr_step, bpr_step_adagrad, epoch_parallel, epoch_serial,
                           sample_negatives)
from aprnb.kernels._rng import STRIDE, seed_states
from aprnb.kernels.batch import batch_serial
from aprnb.kernels.sampling import build_filter
from aprnb.kernels.vat import user_mean_losses, vulnerability_scale

DTYPES = [np.float32, np.float64]
#: one step, kernel vs float64 reference fed with the same (rounded) inputs
STEP_TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
#: a whole epoch: float32 rounding accumulates over the steps
EPOCH_TOL = {np.float32: dict(rtol=1e-3, atol=1e-4), np.float64: dict(rtol=1e-9, atol=1e-11)}

FEW = settings(max_examples=40, deadline=None)
VERY_FEW = settings(max_examples=15, deadline=None)


# -- inputs ------------------------------------------------------------------------------

@st.composite
def step_case(draw):
    """Factors, Adagrad accumulators, a triple with distinct items and hyper-parameters."""
    dt = draw(st.sampled_from(DTYPES))
    n_users = draw(st.integers(1, 4))
    n_items = draw(st.integers(2, 5))
    d = draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.01, 0.3, 1.0]))
    P = (scale * rng.standard_normal((n_users, d))).astype(dt)
    Q = (scale * rng.standard_normal((n_items, d))).astype(dt)
    u = draw(st.integers(0, n_users - 1))
    i = draw(st.integers(0, n_items - 1))
    j = (i + draw(st.integers(1, n_items - 1))) % n_items
    if draw(st.integers(0, 9)) == 0:           # occasionally a zero user row
        P[u] = 0
    if draw(st.integers(0, 9)) == 0:           # occasionally q_i == q_j
        Q[j] = Q[i]
    GP = rng.uniform(0.01, 1.0, P.shape).astype(dt)
    GQ = rng.uniform(0.01, 1.0, Q.shape).astype(dt)
    # hyper-parameters rounded to the kernel dtype, as the models pass them
    hp = dict(lr=dt(draw(st.floats(1e-3, 0.5))), reg=dt(draw(st.floats(0.0, 0.2))),
              eps=dt(draw(st.floats(0.01, 2.0))), reg_adv=dt(draw(st.floats(0.0, 2.0))))
    D = [(scale * rng.standard_normal(d)).astype(dt) for _ in range(3)]
    return dt, P, Q, GP, GQ, u, i, j, hp, D


def assert_rows(new, old, expected, touched, tol):
    """Touched rows match ``expected``; all other rows are bitwise unchanged."""
    touched = np.asarray(sorted(set(touched)), dtype=np.int64)
    other = np.setdiff1d(np.arange(old.shape[0]), touched)
    np.testing.assert_array_equal(new[other], old[other])
    np.testing.assert_allclose(new[touched], expected[touched], **tol)


def run_and_compare(kernel, case, adagrad, apr, given_delta=False):
    dt, P, Q, GP, GQ, u, i, j, hp, D = case
    P0, Q0, GP0, GQ0 = P.copy(), Q.copy(), GP.copy(), GQ.copy()
    lr, reg, eps, reg_adv = hp["lr"], hp["reg"], hp["eps"], hp["reg_adv"]
    acc = (GP0, GQ0) if adagrad else (None, None)
    if given_delta:
        loss = kernel(P, Q, u, i, j, D[0], D[1], D[2], lr, reg, reg_adv)
        expect = ref.apr_step_ref(P0, Q0, u, i, j, float(lr), float(reg), 0.0,
                                  float(reg_adv), *acc, delta=D)
    elif apr:
        args = (GP, GQ) if adagrad else ()
        loss = kernel(P, Q, *args, u, i, j, lr, reg, eps, reg_adv)
        expect = ref.apr_step_ref(P0, Q0, u, i, j, float(lr), float(reg), float(eps),
                                  float(reg_adv), *acc)
    else:
        args = (GP, GQ) if adagrad else ()
        loss = kernel(P, Q, *args, u, i, j, lr, reg)
        expect = ref.bpr_step_ref(P0, Q0, u, i, j, float(lr), float(reg), *acc)
    eP, eQ, eGP, eGQ, eloss = expect
    tol = STEP_TOL[dt]
    assert P.dtype == dt and Q.dtype == dt
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, eloss, **tol)
    assert_rows(P, P0, eP, [u], tol)
    assert_rows(Q, Q0, eQ, [i, j], tol)
    if adagrad:
        assert_rows(GP, GP0, eGP, [u], tol)
        assert_rows(GQ, GQ0, eGQ, [i, j], tol)
    else:
        np.testing.assert_array_equal(GP, GP0)
        np.testing.assert_array_equal(GQ, GQ0)
    return loss


# -- per-triple steps --------------------------------------------------------------------

@FEW
@given(step_case())
def test_bpr_step_matches_reference(case):
    run_and_compare(bpr_step, case, adagrad=False, apr=False)


@FEW
@given(step_case())
def test_bpr_step_adagrad_matches_reference(case):
    run_and_compare(bpr_step_adagrad, case, adagrad=True, apr=False)


@FEW
@given(step_case())
def test_apr_step_matches_reference(case):
    run_and_compare(apr_step, case, adagrad=False, apr=True)


@FEW
@given(step_case())
def test_apr_step_adagrad_matches_reference(case):
    run_and_compare(apr_step_adagrad, case, adagrad=True, apr=True)


@FEW
@given(step_case())
def test_apr_step_given_matches_reference(case):
    run_and_compare(apr_step_given, case, adagrad=False, apr=True, given_delta=True)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("case", ["zero_user", "equal_items", "all_zero"])
@pytest.mark.parametrize("adagrad", [False, True])
def test_apr_step_zero_rows_no_nan(dt, case, adagrad):
    rng = np.random.default_rng(3)
    P = rng.standard_normal((2, 4)).astype(dt)
    Q = rng.standard_normal((3, 4)).astype(dt)
    if case in ("zero_user", "all_zero"):
        P[1] = 0
    if case == "equal_items":
        Q[2] = Q[0]
    if case == "all_zero":
        Q[:] = 0
    GP = np.full(P.shape, 0.1, dtype=dt)
    GQ = np.full(Q.shape, 0.1, dtype=dt)
    hp = dict(lr=dt(0.05), reg=dt(0.01), eps=dt(0.5), reg_adv=dt(1.0))
    case_ = (dt, P, Q, GP, GQ, 1, 0, 2, hp, None)
    loss = run_and_compare(apr_step_adagrad if adagrad else apr_step, case_, adagrad,
                           apr=True)
    for a in (P, Q, GP, GQ):
        assert np.all(np.isfinite(a))
    assert loss == pytest.approx(np.log(2.0), rel=1e-6)   # x = 0 in every case


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("adagrad", [False, True])
def test_apr_step_uses_the_official_guard_at_a_huge_margin(dt, adagrad):
    """Margin x = 16, eps = 2: the official Delta is 0.45 * eps long, d / |d| would be
    eps long; the kernel must follow the official form (docs/derivations.md section 3)."""
    P, Q = large_margin_triple(dt)
    GP = np.full(P.shape, 0.1, dtype=dt)
    GQ = np.full(Q.shape, 0.1, dtype=dt)
    hp = dict(lr=dt(1.0), reg=dt(0.0), eps=dt(2.0), reg_adv=dt(1.0))
    P0, Q0 = P.copy(), Q.copy()
    run_and_compare(apr_step_adagrad if adagrad else apr_step,
                    (dt, P, Q, GP, GQ, 0, 0, 1, hp, None), adagrad, apr=True)
    # the other form moves the rows visibly differently (x_adv = 0 instead of 6.8)
    old = ref.apr_perturbation(P0[0], Q0[0], Q0[1], 2.0, official=False)
    acc = (np.full(P.shape, 0.1), np.full(Q.shape, 0.1)) if adagrad else (None, None)
    oP, oQ, *_ = ref.apr_step_ref(P0, Q0, 0, 0, 1, 1.0, 0.0, 2.0, 1.0, *acc, delta=old)
    assert np.abs(P.astype(np.float64) - oP).max() > 1e-3


# -- epochs ------------------------------------------------------------------------------

@st.composite
def csr_case(draw, dtypes=DTYPES, full_row=True, n_users=(1, 4), n_items=(2, 6), min_deg=1,
             max_users=None, dims=(1, 6), scales=(0.1, 0.5)):
    """A tiny sorted CSR matrix, its positives, a shuffled order, factors and RNG states."""
    dt = draw(st.sampled_from(dtypes))
    nu = draw(st.integers(*n_users))
    ni = draw(st.integers(*n_items))
    d = draw(st.integers(*dims))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for _ in range(nu):
        deg = int(rng.integers(min_deg, ni))          # at most ni - 1: never full
        rows.append(np.sort(rng.choice(ni, deg, replace=False)))
    if full_row and nu > 1 and draw(st.booleans()):
        rows[int(rng.integers(nu))] = np.arange(ni)   # a user without negatives
    indptr = np.zeros(nu + 1, dtype=np.int32)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.concatenate(rows).astype(np.int32)
    pos_users = np.repeat(np.arange(nu, dtype=np.int32), np.diff(indptr))
    pos_items = indices.copy()
    order = rng.permutation(len(pos_users)).astype(np.int64)
    scale = draw(st.sampled_from(scales))
    P = (scale * rng.standard_normal((nu, d))).astype(dt)
    Q = (scale * rng.standard_normal((ni, d))).astype(dt)
    GP = rng.uniform(0.05, 1.0, P.shape).astype(dt)
    GQ = rng.uniform(0.05, 1.0, Q.shape).astype(dt)
    states = seed_states(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), 2)
    hp = dict(lr=dt(draw(st.floats(0.01, 0.3))), reg=dt(draw(st.floats(0.0, 0.1))),
              eps=dt(draw(st.floats(0.05, 1.0))), reg_adv=dt(draw(st.floats(0.0, 2.0))))
    return dict(dt=dt, indptr=indptr, indices=indices, pos_users=pos_users,
                pos_items=pos_items, order=order, P=P, Q=Q, GP=GP, GQ=GQ, states=states,
                n_items=ni, **hp)


def negatives_in_order(c):
    """The negatives the serial/batch kernels will draw: stream 0, in ``order`` order."""
    states = c["states"].copy()
    negs = sample_negatives(c["indptr"], c["indices"], c["pos_users"][c["order"]],
                            c["n_items"], states)
    return negs, states


def run_kernel(kernel, c, mode, adagrad, n_chunks=1, **kw):
    P, Q, GP, GQ, states = (c[k].copy() for k in ("P", "Q", "GP", "GQ", "states"))
    filt = build_filter(c["indptr"], c["indices"], c["n_items"])
    # the kernels visit the pairs in storage order; fit shuffles them in place
    users, items = c["pos_users"][c["order"]], c["pos_items"][c["order"]]
    loss, count = kernel(P, Q, GP, GQ, filt, c["indptr"], c["indices"], users, items, states,
                         c["lr"], c["reg"], c["eps"], c["reg_adv"], mode, adagrad, n_chunks,
                         **kw)
    return P, Q, GP, GQ, states, loss, count


def compare_epoch(got, expected, c, adagrad, tol):
    P, Q, GP, GQ, states, loss, count = got
    eP, eQ, eGP, eGQ, estates, eloss, ecount = expected
    assert count == ecount
    np.testing.assert_array_equal(states, estates)       # same number of draws
    np.testing.assert_allclose(loss, eloss, **tol)
    np.testing.assert_allclose(P, eP, **tol)
    np.testing.assert_allclose(Q, eQ, **tol)
    if adagrad:
        np.testing.assert_allclose(GP, eGP, **tol)
        np.testing.assert_allclose(GQ, eGQ, **tol)
    else:                                                 # SGD never touches them
        np.testing.assert_array_equal(GP, c["GP"])
        np.testing.assert_array_equal(GQ, c["GQ"])


@FEW
@given(st.one_of(csr_case(),
                 # enough triples to fill the kernel's prefetch pipeline several times
                 csr_case(n_users=(8, 20), n_items=(10, 30), full_row=True)),
       st.sampled_from([0, 1]), st.booleans())
def test_epoch_serial_equals_loop_over_reference_steps(c, mode, adagrad):
    negs, estates = negatives_in_order(c)
    P, Q, GP, GQ, total, count = reference_epoch(c, negs, mode, adagrad)
    got = run_kernel(epoch_serial, c, mode, adagrad)
    assert count == int((negs >= 0).sum()) and count > 0
    tol = EPOCH_TOL[c["dt"]]
    if c["dt"] == np.float32:
        # Long float32 epochs can amplify rounding (hypothesis found a 154-step APR epoch
        # at lr 0.25, eps 1 whose factors drift 1.5e-3). Allow 4x the drift of the same
        # loop rounded to float32 after every step, the dynamics' own sensitivity.
        drift = max(np.abs(a - b).max() for a, b in
                    zip(reference_epoch(c, negs, mode, adagrad, np.float32)[:2], (P, Q)))
        tol = dict(tol, atol=max(tol["atol"], 4 * drift))
    compare_epoch(got, (P, Q, GP, GQ, estates, total, count), c, adagrad, tol)


def reference_epoch(c, negs, mode, adagrad, round_to=None):
    """The epoch as a float64 loop over reference steps, optionally rounding the
    parameters to ``round_to`` after every step."""
    P, Q = c["P"].astype(np.float64), c["Q"].astype(np.float64)
    GP, GQ = (c["GP"].astype(np.float64), c["GQ"].astype(np.float64)) if adagrad \
        else (None, None)
    total, count = 0.0, 0
    lr, reg, eps, reg_adv = (float(c[k]) for k in ("lr", "reg", "eps", "reg_adv"))
    for idx, j in zip(c["order"], negs):
        if j < 0:
            continue
        u, i = int(c["pos_users"][idx]), int(c["pos_items"][idx])
        if mode == 0:
            P, Q, GP, GQ, loss = ref.bpr_step_ref(P, Q, u, i, j, lr, reg, GP, GQ)
        else:
            P, Q, GP, GQ, loss = ref.apr_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv,
                                                  GP, GQ)
        if round_to is not None:
            P, Q = (A.astype(round_to).astype(np.float64) for A in (P, Q))
            if adagrad:
                GP, GQ = (A.astype(round_to).astype(np.float64) for A in (GP, GQ))
        total += loss
        count += 1
    return P, Q, GP, GQ, total, count


def check_batch_epoch(c, mode, adagrad, B):
    """Run the mini-batch kernel on case ``c`` and compare it with the NumPy reference
    applied batch by batch; return the batches as ``(users, items, negatives)``."""
    negs, estates = negatives_in_order(c)
    P, Q = c["P"].astype(np.float64), c["Q"].astype(np.float64)
    GP, GQ = c["GP"].astype(np.float64), c["GQ"].astype(np.float64)
    lr, reg, eps, reg_adv = (float(c[k]) for k in ("lr", "reg", "eps", "reg_adv"))
    if mode == 0:
        reg_adv = 0.0             # mode 0: no adversarial term
    total, batches = 0.0, []
    users = c["pos_users"][c["order"]].astype(np.int64)
    items = c["pos_items"][c["order"]].astype(np.int64)
    for start in range(0, len(users), B):
        sl = slice(start, start + B)
        keep = negs[sl] >= 0
        us, is_, js = users[sl][keep], items[sl][keep], negs[sl][keep].astype(np.int64)
        if len(us) == 0:
            continue
        batches.append((us, is_, js))
        P, Q, GP, GQ, loss = ref.apr_batch_step_ref(P, Q, GP, GQ, us, is_, js, lr, reg, eps,
                                                    reg_adv, adagrad)
        total += loss
    count = int((negs >= 0).sum())
    got = run_kernel(batch_serial, c, mode, adagrad, batch_size=B)
    if not adagrad:
        GP, GQ = c["GP"], c["GQ"]
    compare_epoch(got, (P, Q, GP, GQ, estates, total, count), c, adagrad, EPOCH_TOL[c["dt"]])
    return batches


@FEW
@given(csr_case(full_row=True, n_users=(2, 4), n_items=(3, 5), min_deg=2),
       st.data(), st.sampled_from([0, 1]), st.booleans())
def test_batch_epoch_equals_reference_batch_by_batch(c, data, mode, adagrad):
    # every user has >= 2 positives and batch_size > n_users, so the first batch
    # repeats a user; it holds >= 3 triples (6 item slots) over <= 5 items, so it
    # repeats an item too.
    n_users = len(c["indptr"]) - 1
    B = data.draw(st.integers(max(3, n_users + 1), 8), label="batch_size")
    batches = check_batch_epoch(c, mode, adagrad, B)
    if not np.any(np.diff(c["indptr"]) == c["n_items"]):   # no skipped triple: guaranteed
        assert any(len(set(us)) < len(us) for us, _, _ in batches)
        assert any(len(set(is_) | set(js)) < 2 * len(is_) for _, is_, js in batches)


def lone_before_shared(us, is_, js):
    """True when a triple of the batch shares no row with the others (the kernel's
    per-triple path) and comes before the first use of a row that others share."""
    rows = [(("u", u), ("i", i), ("i", j)) for u, i, j in zip(us, is_, js)]
    uses = {}
    for t, triple in enumerate(rows):
        for r in triple:
            uses.setdefault(r, []).append(t)
    lone = [t for t, triple in enumerate(rows) if all(len(uses[r]) == 1 for r in triple)]
    firsts_shared = [ts[0] for ts in uses.values() if len(ts) > 1]
    return bool(lone and firsts_shared and min(lone) < max(firsts_shared))


@FEW
@given(csr_case(full_row=False, n_users=(6, 10), n_items=(20, 40), min_deg=1),
       st.integers(4, 10), st.booleans())
def test_batch_epoch_mixing_lone_and_shared_triples_equals_reference(c, B, adagrad):
    # a lone triple takes the per-triple path; the shared rows after it must still
    # get their perturbation from their summed gradients
    batches = check_batch_epoch(c, 1, adagrad, B)
    assume(any(lone_before_shared(*b) for b in batches))


@FEW
@given(csr_case(dtypes=[np.float64]), st.sampled_from([0, 1]), st.booleans())
def test_batch_epoch_of_size_one_equals_epoch_serial(c, mode, adagrad):
    serial = run_kernel(epoch_serial, c, mode, adagrad)
    batch = run_kernel(batch_serial, c, mode, adagrad, batch_size=1)
    assert serial[6] == batch[6] > 0
    compare_epoch(batch, serial, c, adagrad, dict(rtol=1e-12, atol=1e-14))


@FEW
@given(csr_case(dims=(1, 67), scales=(0.1, 0.5, 5.0)), st.booleans())
def test_apr_batch_of_size_one_is_the_per_triple_epoch_bit_for_bit(c, adagrad):
    # a batch of one shares no row: each triple takes the per-triple step itself, so
    # the parameters, accumulators and streams are bitwise those of the per-triple
    # epoch (widths up to 67 reach the vectorised loops; scale 5 reaches the guard)
    serial = run_kernel(epoch_serial, c, 1, adagrad)
    batch = run_kernel(batch_serial, c, 1, adagrad, batch_size=1)
    for got, want in zip(batch[:5], serial[:5]):
        np.testing.assert_array_equal(got, want)
    assert batch[6] == serial[6]


@VERY_FEW
@given(csr_case(full_row=False, n_users=(2, 6), n_items=(3, 8)), st.sampled_from([0, 1, 2]),
       st.booleans())
def test_epoch_parallel_two_chunks_runs_and_counts_every_positive(c, mode, adagrad):
    P, Q, GP, GQ, states, loss, count = run_kernel(epoch_parallel, c, mode, adagrad,
                                                   n_chunks=2)
    assert count == len(c["pos_users"])
    assert np.isfinite(loss) and loss > 0
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(Q))
    assert not np.array_equal(Q, c["Q"])                  # it trained
    # both streams advanced (chunk 1 draws from states[STRIDE])
    assert states[0] != c["states"][0] or len(c["pos_users"]) < 2
    assert states[STRIDE] != c["states"][STRIDE] or len(c["pos_users"]) < 2


def test_every_cached_kernel_has_its_own_cache_file():
    # Numba keys a cache entry by the Python function's name and the signature,
    # not by compile options: two dispatchers built from one function (serial and
    # parallel=True) would share one entry, and after a reload the "parallel"
    # epoch ran the serial code. Every cached dispatcher needs its own index file.
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import aprnb.kernels as kernels
    owners = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"aprnb.kernels.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj._cache.__class__.__name__ != "NullCache":
                owners.setdefault(obj._cache._cache_file._index_path, {})[id(obj)] = name
    shared = {path: sorted(names.values()) for path, names in owners.items() if len(names) > 1}
    assert not shared, f"dispatchers sharing a Numba cache file: {shared}"
    assert len(owners) >= 10


@VERY_FEW
@given(csr_case(n_users=(3, 8), n_items=(4, 10), full_row=False), st.sampled_from([0, 1]))
def test_epoch_shuffle_flag(c, mode):
    from aprnb.kernels._rng import shuffle_pairs
    filt = build_filter(c["indptr"], c["indices"], c["n_items"])
    args = (c["lr"], c["reg"], c["eps"], c["reg_adv"], mode, False)

    def run(n_chunks, shuffle, pre_shuffle):
        P, Q, states = c["P"].copy(), c["Q"].copy(), c["states"].copy()
        users, items = c["pos_users"].copy(), c["pos_items"].copy()
        if pre_shuffle:
            shuffle_pairs(users, items, states, 0)
        out = epoch_serial(P, Q, P[:0], Q[:0], filt, c["indptr"], c["indices"], users, items,
                           states, *args, n_chunks, shuffle)
        return P, Q, users, items, out
    # one chunk: the in-kernel shuffle is the caller's shuffle, from the same stream
    a, b = run(1, True, False), run(1, False, True)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    assert a[4] == b[4]
    # two chunks: each chunk permutes its own slice only
    n = len(c["pos_users"])
    _, _, users, items, _ = run(2, True, False)
    for lo, hi in ((0, n // 2), (n // 2, n)):
        got = sorted(zip(users[lo:hi].tolist(), items[lo:hi].tolist()))
        want = sorted(zip(c["pos_users"][lo:hi].tolist(), c["pos_items"][lo:hi].tolist()))
        assert got == want


# -- VAT: per-user radius (docs/derivations.md section 10) -------------------------------------

def _scale(c, seed):
    """A per-user factor array in the factors' dtype, as Training passes it."""
    n_users = len(c["indptr"]) - 1
    return np.random.default_rng(seed).uniform(0.05, 2.0, n_users).astype(c["dt"])


@FEW
@given(csr_case(n_users=(2, 12), n_items=(4, 20), full_row=True), st.integers(0, 2**32 - 1),
       st.booleans())
def test_vat_epoch_serial_equals_loop_over_reference_steps(c, seed, adagrad):
    scale = _scale(c, seed)
    negs, estates = negatives_in_order(c)
    P, Q = c["P"].astype(np.float64), c["Q"].astype(np.float64)
    GP, GQ = (c["GP"].astype(np.float64), c["GQ"].astype(np.float64)) if adagrad \
        else (None, None)
    lr, reg, eps, reg_adv = (float(c[k]) for k in ("lr", "reg", "eps", "reg_adv"))
    total, count = 0.0, 0
    for idx, j in zip(c["order"], negs):
        if j < 0:
            continue
        u, i = int(c["pos_users"][idx]), int(c["pos_items"][idx])
        P, Q, GP, GQ, loss = ref.vat_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv, scale,
                                              GP, GQ)
        total += loss
        count += 1
    got = run_kernel(epoch_serial, c, MODE_VAT, adagrad, scale=scale)
    compare_epoch(got, (P, Q, GP, GQ, estates, total, count), c, adagrad, EPOCH_TOL[c["dt"]])


@VERY_FEW
@given(csr_case(n_users=(2, 8), n_items=(4, 12)), st.booleans())
def test_vat_epoch_with_unit_scale_is_apr_bitwise(c, adagrad):
    c = dict(c, reg_adv=c["dt"](1.0))             # with reg_adv = 0 the radius is unused
    ones = np.ones(len(c["indptr"]) - 1, dtype=c["dt"])
    vat = run_kernel(epoch_serial, c, MODE_VAT, adagrad, scale=ones)
    apr = run_kernel(epoch_serial, c, MODE_APR, adagrad)
    for a, b in zip(vat, apr):
        np.testing.assert_array_equal(a, b)
    # and the factor matters: another scale trains differently
    other = run_kernel(epoch_serial, c, MODE_VAT, adagrad, scale=ones * c["dt"](1.5))
    assert not np.array_equal(other[0], apr[0])


@FEW
@given(csr_case(n_users=(1, 8), n_items=(3, 10), full_row=True), st.floats(0.1, 4.0))
def test_vat_scale_kernels_match_brute_force(c, lam):
    negs, _ = negatives_in_order(c)
    users, items = c["pos_users"][c["order"]], c["pos_items"][c["order"]]
    n_users = len(c["indptr"]) - 1
    loss, count = user_mean_losses(c["P"], c["Q"], users, items, negs, n_users)
    rloss, rcount = ref.user_losses_ref(c["P"], c["Q"], users, items, negs, n_users)
    np.testing.assert_array_equal(count, rcount)
    np.testing.assert_allclose(loss, rloss, rtol=1e-6 if c["dt"] == np.float32 else 1e-12)
    out = np.empty(n_users, dtype=c["dt"])
    vulnerability_scale(rloss, rcount, lam, out)
    np.testing.assert_allclose(out, ref.vulnerability_scale_ref(rloss, rcount, lam),
                               rtol=1e-6 if c["dt"] == np.float32 else 1e-12)
