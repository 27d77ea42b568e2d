"""The NumPy reference (aprnb/reference.py) against float64 central differences.

Every analytic gradient in the reference is compared with a numerical one; the
step functions are checked to be gradient descent (or Adagrad) on the loss
*plus* ``reg/2 * ||theta||^2`` per occurrence, which pins the regularisation
convention. The derivations are in docs/derivations.md.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aprnb import reference as ref
from checks import large_margin_triple, num_grad

SETTINGS = settings(max_examples=40, deadline=None)
GRAD_TOL = dict(rtol=1e-6, atol=1e-7)      # analytic vs numerical gradient


ELEM = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                 width=64)


@st.composite
def vecs(draw, n):
    """``n`` float64 vectors of a common length 1..6."""
    d = draw(st.integers(1, 6))
    return [draw(hnp.arrays(np.float64, d, elements=ELEM)) for _ in range(n)]


@st.composite
def seeded_vecs(draw, n, dmax=6):
    """``n`` Gaussian vectors from a drawn seed and scale (no near-zero pathologies)."""
    d = draw(st.integers(1, dmax))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.05, 0.5, 1.5]))
    return [scale * rng.standard_normal(d) for _ in range(n)]


@st.composite
def tables_and_batch(draw, max_batch=8):
    """Small tables ``P``, ``Q`` and a batch of triples with ``i != j`` (repeats likely)."""
    n_users = draw(st.integers(1, 3))
    n_items = draw(st.integers(2, 4))
    d = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 0.7, 1.5]))
    P = scale * rng.standard_normal((n_users, d))
    Q = scale * rng.standard_normal((n_items, d))
    B = draw(st.integers(1, max_batch))
    us = rng.integers(0, n_users, B)
    is_ = rng.integers(0, n_items, B)
    js = (is_ + rng.integers(1, n_items, B)) % n_items          # j != i
    return P, Q, us, is_, js


# -- scalar functions --------------------------------------------------------------------

@SETTINGS
@given(st.floats(-30.0, 30.0))
def test_sigmoid_softplus_against_naive_forms(x):
    np.testing.assert_allclose(ref.sigmoid(x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-13, atol=0)
    np.testing.assert_allclose(ref.softplus(x), np.log(1.0 + np.exp(x)), rtol=1e-12,
                               atol=1e-15)
    # softplus' = sigmoid and softplus(x) - softplus(-x) = x
    (d,) = num_grad(lambda a: ref.softplus(a[0]), np.array([x]))
    np.testing.assert_allclose(d[0], ref.sigmoid(x), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ref.softplus(x) - ref.softplus(-x), x, rtol=1e-12, atol=1e-12)


def test_sigmoid_softplus_extreme_arguments():
    x = np.array([-1e308, -1000.0, -50.0, 0.0, 50.0, 1000.0, 1e308])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow is fine
        s = ref.sigmoid(x)
        sp = ref.softplus(x)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    assert s[0] == 0.0 and s[3] == 0.5 and s[-1] == 1.0
    np.testing.assert_allclose(sp[[1, 2]], [0.0, np.exp(-50.0)], rtol=1e-12, atol=0)
    assert sp[5] == 1000.0 and sp[-1] == 1e308
    # BPR loss of a very wrong triple is the (large) negative margin, not inf
    assert ref.bpr_loss([30.0], [0.0], [40.0]) == pytest.approx(1200.0)


# -- one triple --------------------------------------------------------------------------

@SETTINGS
@given(vecs(3))
def test_bpr_grads_match_central_differences(v):
    p, qi, qj = v
    analytic = ref.bpr_grads(p, qi, qj)
    numeric = num_grad(ref.bpr_loss, p, qi, qj)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, **GRAD_TOL)


@SETTINGS
@given(vecs(6), st.floats(0.0, 3.0))
def test_apr_grads_match_central_differences(v, reg_adv):
    p, qi, qj, Du, Di, Dj = v
    analytic = ref.apr_grads(p, qi, qj, Du, Di, Dj, reg_adv)
    numeric = num_grad(lambda a, b, c: ref.apr_loss(a, b, c, Du, Di, Dj, reg_adv), p, qi, qj)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, **GRAD_TOL)


@SETTINGS
@given(seeded_vecs(3), st.floats(0.01, 3.0))
def test_closed_form_perturbation_is_normalised_numerical_gradient(v, eps):
    p, qi, qj = v
    closed = ref.apr_perturbation(p, qi, qj, eps)
    numeric = num_grad(ref.bpr_loss, p, qi, qj)
    for c, n in zip(closed, numeric):
        expected = eps * n / np.sqrt(max(n @ n, 1e-12))      # TensorFlow's l2_normalize
        np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-7 * eps)
    # away from the guard sigma(-x) cancels: full length, whatever the confidence
    s = ref.sigmoid(-(p @ (qi - qj)))
    if s * min(np.linalg.norm(p), np.linalg.norm(qi - qj)) > 1e-5:
        for c in closed:
            np.testing.assert_allclose(np.linalg.norm(c), eps, rtol=1e-12)
        direction = ref.apr_perturbation(p, qi, qj, eps, official=False)
        for c, d in zip(closed, direction):
            np.testing.assert_allclose(c, d, rtol=1e-12, atol=1e-15)


def test_official_guard_shrinks_the_perturbation_at_a_huge_margin():
    """AMF.py normalises g = s*d with sqrt(max(|g|^2, 1e-12)); at x = 16, eps = 2 the
    rows are 0.45 * eps long, where normalising d alone gives eps (a factor 2.2)."""
    P, Q = large_margin_triple()
    p, qi, qj = P[0], Q[0], Q[1]
    s = ref.sigmoid(-16.0)
    shrink = s * 4.0 / 1e-6
    assert 0.44 < shrink < 0.46
    Du, Di, Dj = ref.apr_perturbation(p, qi, qj, 2.0)
    np.testing.assert_allclose(Du, [-2.0 * shrink, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(Di, [-2.0 * shrink, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(Dj, [2.0 * shrink, 0, 0], rtol=1e-12)
    old = ref.apr_perturbation(p, qi, qj, 2.0, official=False)
    for d_new, d_old in zip((Du, Di, Dj), old):
        np.testing.assert_allclose(np.linalg.norm(d_old), 2.0, rtol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(d_old) / np.linalg.norm(d_new), 1 / shrink,
                                   rtol=1e-12)


@pytest.mark.parametrize("case", ["zero_p", "equal_items", "all_zero"])
def test_zero_vectors_give_zero_perturbation(case):
    rng = np.random.default_rng(0)
    p, qi = rng.standard_normal(4), rng.standard_normal(4)
    qj = rng.standard_normal(4)
    if case in ("zero_p", "all_zero"):
        p = np.zeros(4)
    if case == "equal_items":
        qj = qi.copy()
    if case == "all_zero":
        qi = qj = np.zeros(4)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        Du, Di, Dj = ref.apr_perturbation(p, qi, qj, 0.5)
        loss = ref.apr_loss(p, qi, qj, Du, Di, Dj, 1.0)
        grads = ref.apr_grads(p, qi, qj, Du, Di, Dj, 1.0)
        P, Q, _, _, step_loss = ref.apr_step_ref(p[None], np.stack([qi, qj]), 0, 0, 1,
                                                 0.1, 0.01, 0.5, 1.0)
    for a in (Du, Di, Dj, *grads, P, Q):
        assert np.all(np.isfinite(a))
    assert np.isfinite(loss) and np.isfinite(step_loss)
    if case in ("zero_p", "all_zero"):
        assert not Di.any() and not Dj.any()
        assert np.linalg.norm(Du) == pytest.approx(0.0 if case == "all_zero" else 0.5)
    else:
        assert not Du.any()
        assert np.linalg.norm(Di) == pytest.approx(0.5)


# -- per-triple steps --------------------------------------------------------------------

@st.composite
def step_case(draw):
    n_users = draw(st.integers(1, 3))
    n_items = draw(st.integers(2, 4))
    d = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = rng.standard_normal((n_users, d))
    Q = rng.standard_normal((n_items, d))
    u = draw(st.integers(0, n_users - 1))
    i = draw(st.integers(0, n_items - 1))
    j = (i + draw(st.integers(1, n_items - 1))) % n_items
    GP = rng.uniform(0.05, 1.0, P.shape)
    GQ = rng.uniform(0.05, 1.0, Q.shape)
    hyper = dict(lr=draw(st.floats(1e-3, 0.5)), reg=draw(st.floats(0.0, 0.2)))
    return P, Q, GP, GQ, u, i, j, hyper


def _check_descent(P, Q, GP, GQ, u, i, j, lr, new, loss_fn, adagrad):
    """``new`` = (P', Q', GP', GQ') is one SGD/Adagrad step on loss_fn(p, qi, qj)."""
    gp, gi, gj = num_grad(loss_fn, P[u], Q[i], Q[j])
    P1, Q1, GP1, GQ1 = new
    expP, expQ = P.copy(), Q.copy()
    if adagrad:
        expGP, expGQ = GP.copy(), GQ.copy()
        expGP[u] += gp ** 2
        expGQ[i] += gi ** 2
        expGQ[j] += gj ** 2
        expP[u] -= lr * gp / np.sqrt(expGP[u])
        expQ[i] -= lr * gi / np.sqrt(expGQ[i])
        expQ[j] -= lr * gj / np.sqrt(expGQ[j])
        np.testing.assert_allclose(GP1, expGP, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(GQ1, expGQ, rtol=1e-6, atol=1e-8)
    else:
        assert GP1 is None and GQ1 is None
        expP[u] -= lr * gp
        expQ[i] -= lr * gi
        expQ[j] -= lr * gj
    np.testing.assert_allclose(P1, expP, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Q1, expQ, rtol=1e-6, atol=1e-8)


@SETTINGS
@given(step_case(), st.booleans())
def test_bpr_step_ref_descends_on_regularised_loss(case, adagrad):
    P, Q, GP, GQ, u, i, j, hp = case
    lr, reg = hp["lr"], hp["reg"]
    P0, Q0 = P.copy(), Q.copy()
    acc = (GP, GQ) if adagrad else (None, None)
    *new, loss = ref.bpr_step_ref(P, Q, u, i, j, lr, reg, *acc)
    np.testing.assert_array_equal(P, P0)          # inputs untouched
    np.testing.assert_array_equal(Q, Q0)
    assert loss == pytest.approx(ref.bpr_loss(P[u], Q[i], Q[j]))

    def f(p, qi, qj):                              # reg * theta <=> reg / 2 * ||theta||^2
        return ref.bpr_loss(p, qi, qj) + 0.5 * reg * (p @ p + qi @ qi + qj @ qj)
    _check_descent(P, Q, GP, GQ, u, i, j, lr, new, f, adagrad)


@SETTINGS
@given(step_case(), st.booleans(), st.floats(0.01, 2.0), st.floats(0.0, 2.0), st.booleans())
def test_apr_step_ref_descends_with_delta_held_constant(case, adagrad, eps, reg_adv, given_):
    P, Q, GP, GQ, u, i, j, hp = case
    lr, reg = hp["lr"], hp["reg"]
    if given_:
        rng = np.random.default_rng(1)
        delta = tuple(rng.standard_normal(P.shape[1]) for _ in range(3))
    else:
        delta = ref.apr_perturbation(P[u], Q[i], Q[j], eps)
    acc = (GP, GQ) if adagrad else (None, None)
    *new, loss = ref.apr_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv, *acc,
                                  delta=delta if given_ else None)
    assert loss == pytest.approx(ref.bpr_loss(P[u], Q[i], Q[j]))

    def f(p, qi, qj):
        return (ref.apr_loss(p, qi, qj, *delta, reg_adv)
                + 0.5 * reg * (p @ p + qi @ qi + qj @ qj))
    _check_descent(P, Q, GP, GQ, u, i, j, lr, new, f, adagrad)


# -- many triples ------------------------------------------------------------------------

def _summed_bpr(us, is_, js):
    def f(P, Q):
        return sum(ref.bpr_loss(P[u], Q[i], Q[j]) for u, i, j in zip(us, is_, js) if j >= 0)
    return f


@SETTINGS
@given(tables_and_batch())
def test_dataset_and_batch_gradients_match_central_differences(data):
    P, Q, us, is_, js = data
    js = js.copy()
    js[-1] = -1                                   # "no negative": must be skipped
    nP, nQ = num_grad(_summed_bpr(us, is_, js), P, Q)
    for fn in (ref.dataset_bpr_gradient, ref.batch_bpr_row_gradients):
        gP, gQ = fn(P, Q, us, is_, js)
        np.testing.assert_allclose(gP, nP, **GRAD_TOL)
        np.testing.assert_allclose(gQ, nQ, **GRAD_TOL)


def test_repeated_rows_are_summed_not_overwritten():
    P = np.array([[1.0, 0.5]])
    Q = np.array([[0.2, -0.1], [0.3, 0.4], [-0.5, 0.1]])
    us, is_, js = [0, 0, 0], [0, 1, 0], [1, 2, 2]
    gP, gQ = ref.dataset_bpr_gradient(P, Q, us, is_, js)
    single = [ref.bpr_grads(P[0], Q[i], Q[j]) for i, j in zip(is_, js)]
    np.testing.assert_allclose(gP[0], sum(g[0] for g in single), rtol=1e-14)
    np.testing.assert_allclose(gQ[0], single[0][1] + single[2][1], rtol=1e-14)
    np.testing.assert_allclose(gQ[1], single[0][2] + single[1][1], rtol=1e-14)
    np.testing.assert_allclose(gQ[2], single[1][2] + single[2][2], rtol=1e-14)


@SETTINGS
@given(tables_and_batch(), st.floats(0.01, 2.0))
def test_batch_perturbation_is_rowwise_normalised_numerical_gradient(data, eps):
    P, Q, us, is_, js = data
    DP, DQ = ref.batch_perturbation(P, Q, us, is_, js, eps)
    nP, nQ = num_grad(_summed_bpr(us, is_, js), P, Q)
    for D, N, touched in ((DP, nP, set(us)), (DQ, nQ, set(is_) | set(js))):
        for r in range(D.shape[0]):
            norm = np.linalg.norm(N[r])
            if r not in touched:
                assert not D[r].any()
            elif norm > 1e-4:                      # well-conditioned direction
                np.testing.assert_allclose(D[r], eps * N[r] / norm, rtol=1e-4,
                                           atol=1e-5 * eps)
            else:                                  # cancelling gradients: only bounded
                assert np.linalg.norm(D[r]) <= eps * (1 + 1e-12)


@SETTINGS
@given(tables_and_batch(), st.booleans(), st.floats(1e-3, 0.5), st.floats(0.0, 0.2),
       st.floats(0.01, 2.0), st.floats(0.0, 2.0))
def test_apr_batch_step_ref_descends_on_summed_objective(data, adagrad, lr, reg, eps,
                                                         reg_adv):
    P, Q, us, is_, js = data
    rng = np.random.default_rng(2)
    GP = rng.uniform(0.05, 1.0, P.shape)
    GQ = rng.uniform(0.05, 1.0, Q.shape)
    DP, DQ = ref.batch_perturbation(P, Q, us, is_, js, eps)

    def f(P_, Q_):                                 # Delta fixed, reg per occurrence
        out = 0.0
        for u, i, j in zip(us, is_, js):
            out += ref.apr_loss(P_[u], Q_[i], Q_[j], DP[u], DQ[i], DQ[j], reg_adv)
            out += 0.5 * reg * (P_[u] @ P_[u] + Q_[i] @ Q_[i] + Q_[j] @ Q_[j])
        return out
    gP, gQ = num_grad(f, P, Q)
    P1, Q1, GP1, GQ1, loss = ref.apr_batch_step_ref(P, Q, GP, GQ, us, is_, js, lr, reg, eps,
                                                    reg_adv, adagrad)
    assert loss == pytest.approx(_summed_bpr(us, is_, js)(P, Q))
    tP = np.isin(np.arange(P.shape[0]), us)
    tQ = np.isin(np.arange(Q.shape[0]), np.concatenate([is_, js]))
    for W, W1, G, G1, g, t in ((P, P1, GP, GP1, gP, tP), (Q, Q1, GQ, GQ1, gQ, tQ)):
        if adagrad:
            expG = G + np.where(t[:, None], g ** 2, 0.0)
            exp = W - np.where(t[:, None], lr * g / np.sqrt(expG), 0.0)
        else:
            expG, exp = G, W - lr * g
        np.testing.assert_allclose(G1, expG, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(W1, exp, rtol=1e-6, atol=1e-8)
        np.testing.assert_array_equal(W1[~t], W[~t])


@SETTINGS
@given(step_case(), st.booleans(), st.floats(0.01, 2.0), st.floats(0.0, 2.0))
def test_batch_of_one_triple_is_the_per_triple_step(case, adagrad, eps, reg_adv):
    P, Q, GP, GQ, u, i, j, hp = case
    lr, reg = hp["lr"], hp["reg"]
    one = ref.apr_step_ref(P, Q, u, i, j, lr, reg, eps, reg_adv,
                           *((GP, GQ) if adagrad else (None, None)))
    batch = ref.apr_batch_step_ref(P, Q, GP, GQ, [u], [i], [j], lr, reg, eps, reg_adv,
                                   adagrad)
    for a, b in zip(one[:2], batch[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    if adagrad:
        for a, b in zip(one[2:4], batch[2:4]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert one[4] == pytest.approx(batch[4], rel=1e-14)


# -- mode 2 (APR with random noise): replay the NOISE stream in NumPy ------------------------
# The kernels draw the Gaussian rows from the chunk's NOISE stream (SplitMix64, see
# aprnb/kernels/_rng.py) by Box-Muller, scale each row to L2 norm eps, and then take the
# APR step with that perturbation held constant. The replay below redoes every draw.

_M64 = (1 << 64) - 1


def _splitmix_uniforms(state, n):
    """``n`` uniforms in [0, 1) from one SplitMix64 word; returns (uniforms, new state)."""
    out = np.empty(n)
    z0 = int(state)
    for k in range(n):
        z0 = (z0 + 0x9E3779B97F4A7C15) & _M64
        z = z0
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
        out[k] = (z >> 11) * 2.0 ** -53
    return out, np.uint64(z0)


def _noise_rows(states, word, n_rows, d, eps):
    """``n_rows`` Gaussian rows of norm ``eps`` as ``fill_random_unit`` draws them."""
    rows = np.empty((n_rows, d))
    for r in range(n_rows):
        u, states[word] = _splitmix_uniforms(states[word], 2 * d)
        z = np.sqrt(-2.0 * np.log(1.0 - u[0::2])) * np.cos(2.0 * np.pi * u[1::2])
        rows[r] = z * (eps / np.sqrt(max(float(z @ z), 1e-12)))
    return rows


def _mode2_problem(seed, d=4):
    import scipy.sparse as sp

    from aprnb.kernels._rng import seed_states
    from aprnb.kernels.sampling import build_filter
    rng = np.random.default_rng(seed)
    X = sp.random(6, 9, density=0.35, random_state=seed, format="csr")
    X.data[:] = 1.0
    X.sort_indices()
    indptr, indices = X.indptr.astype(np.int64), X.indices.astype(np.int64)
    users = np.repeat(np.arange(6), np.diff(indptr)).astype(np.int64)
    perm = rng.permutation(len(users))
    return dict(P=rng.normal(0, 0.3, (6, d)), Q=rng.normal(0, 0.3, (9, d)), indptr=indptr,
                indices=indices, users=users[perm].copy(), items=indices[perm].copy(),
                filt=build_filter(indptr, indices, 9),
                states=seed_states(np.random.default_rng(seed + 1), 1))


@pytest.mark.parametrize("seed, eps, adagrad", [(0, 0.3, False), (1, 1.7, False),
                                                (2, 0.5, True)])
def test_mode2_epoch_replays_noise_stream(seed, eps, adagrad):
    from aprnb.kernels import MODE_APR_RANDOM, epoch_serial, sample_negatives
    from aprnb.kernels._rng import NOISE
    c = _mode2_problem(seed)
    lr, reg, reg_adv = 0.1, 0.01, 0.8
    P, Q = c["P"].copy(), c["Q"].copy()
    GP, GQ = (np.full_like(P, 0.1), np.full_like(Q, 0.1)) if adagrad else (P[:0], Q[:0])
    GP0, GQ0 = GP.copy(), GQ.copy()
    states = c["states"].copy()
    loss, cnt = epoch_serial(P, Q, GP, GQ, c["filt"], c["indptr"], c["indices"],
                             c["users"].copy(), c["items"].copy(), states, lr, reg, eps,
                             reg_adv, MODE_APR_RANDOM, adagrad, 1)
    # replay: negatives from the DRAW/REDRAW streams, noise from the NOISE stream
    rs = c["states"].copy()
    negs = sample_negatives(c["indptr"], c["indices"], c["users"], 9, rs, c["filt"])
    rP, rQ = c["P"].copy(), c["Q"].copy()
    rGP, rGQ = (GP0, GQ0) if adagrad else (None, None)
    ref_loss, n = 0.0, 0
    for u, i, j in zip(c["users"], c["items"], negs):
        if j < 0:
            continue
        D = _noise_rows(rs, NOISE, 3, P.shape[1], eps)
        rP, rQ, rGP, rGQ, lo = ref.apr_step_ref(rP, rQ, u, i, j, lr, reg, eps, reg_adv,
                                                GP=rGP, GQ=rGQ, delta=(D[0], D[1], D[2]))
        ref_loss += lo
        n += 1
    assert cnt == n > 0
    np.testing.assert_allclose(P, rP, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Q, rQ, rtol=1e-6, atol=1e-9)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_array_equal(states, rs)      # every stream advanced as replayed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [1e-3, 0.5, 1.0, 3.0])
def test_fill_random_unit_rows_have_norm_eps(dtype, eps):
    from aprnb.kernels._rng import NOISE, seed_states
    from aprnb.kernels.epoch import fill_random_unit
    states = seed_states(np.random.default_rng(7), 1)
    before = states.copy()
    buf = np.zeros((5, 16), dtype=dtype)
    for r in range(5):
        fill_random_unit(buf, r, eps, states, NOISE)
    norms = np.linalg.norm(buf.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, eps, rtol=1e-6 if dtype == np.float32 else 1e-12)
    # only the NOISE stream moved, and the rows are what the replay draws
    assert (states != before).tolist() == [k == NOISE for k in range(len(states))]
    expect = _noise_rows(before.copy(), NOISE, 5, 16, eps)
    np.testing.assert_allclose(buf, expect, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-7 * eps)


def _noise_batch_step(P, Q, us, is_, js, DP, DQ, lr, reg, reg_adv):
    """Step 2-3 of ``ref.apr_batch_step_ref`` (SGD) with a given perturbation table."""
    gP, gQ = np.zeros_like(P), np.zeros_like(Q)
    loss = 0.0
    for u, i, j in zip(us, is_, js):
        loss += ref.bpr_loss(P[u], Q[i], Q[j])
        dp, dqi, dqj = ref.apr_grads(P[u], Q[i], Q[j], DP[u], DQ[i], DQ[j], reg_adv)
        np.add.at(gP, u, dp + reg * P[u])
        np.add.at(gQ, i, dqi + reg * Q[i])
        np.add.at(gQ, j, dqj + reg * Q[j])
    touched_u = np.unique(us)
    touched_i = np.unique(np.concatenate([is_, js]))
    P[touched_u] -= lr * gP[touched_u]
    Q[touched_i] -= lr * gQ[touched_i]
    return loss


@pytest.mark.parametrize("seed, eps, batch", [(3, 0.4, 4), (4, 1.3, 64)])
def test_mode2_batch_epoch_replays_noise_stream(seed, eps, batch):
    from aprnb.kernels import MODE_APR_RANDOM, sample_negatives
    from aprnb.kernels._rng import NOISE
    from aprnb.kernels.batch import batch_serial
    c = _mode2_problem(seed)
    lr, reg, reg_adv = 0.1, 0.01, 0.8
    P, Q = c["P"].copy(), c["Q"].copy()
    states = c["states"].copy()
    loss, cnt = batch_serial(P, Q, P[:0], Q[:0], c["filt"], c["indptr"], c["indices"],
                             c["users"].copy(), c["items"].copy(), states, lr, reg, eps,
                             reg_adv, MODE_APR_RANDOM, False, 1, batch)
    rs = c["states"].copy()
    rP, rQ = c["P"].copy(), c["Q"].copy()
    ref_loss, n, d = 0.0, 0, P.shape[1]
    for lo in range(0, len(c["users"]), batch):
        us = c["users"][lo:lo + batch]
        negs = sample_negatives(c["indptr"], c["indices"], us, 9, rs, c["filt"])
        keep = negs >= 0
        us, is_, js = us[keep], c["items"][lo:lo + batch][keep], negs[keep]
        # rows get their noise in the order they first occur: users, then items (i, j)
        u_rows = list(dict.fromkeys(us.tolist()))
        i_rows = list(dict.fromkeys(np.stack([is_, js], 1).ravel().tolist()))
        DP, DQ = np.zeros_like(rP), np.zeros_like(rQ)
        DP[u_rows] = _noise_rows(rs, NOISE, len(u_rows), d, eps)
        DQ[i_rows] = _noise_rows(rs, NOISE, len(i_rows), d, eps)
        ref_loss += _noise_batch_step(rP, rQ, us, is_, js, DP, DQ, lr, reg, reg_adv)
        n += len(us)
    assert cnt == n > 0
    np.testing.assert_allclose(P, rP, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Q, rQ, rtol=1e-6, atol=1e-9)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_array_equal(states, rs)


# -- VAT (docs/derivations.md section 10) ----------------------------------------------------

@SETTINGS
@given(seeded_vecs(3), st.floats(0.05, 2.0), st.floats(0.01, 2.0), st.floats(0.0, 3.0))
def test_vat_grads_match_central_differences_with_delta_and_scale_constant(
        v, eps, c_u, reg_adv):
    # (V4): the perturbation (and with it c_u) is the inner player's move, held fixed
    p, qi, qj = v
    delta = ref.vat_perturbation(p, qi, qj, eps, c_u)
    analytic = ref.vat_grads(p, qi, qj, eps, c_u, reg_adv)
    numeric = num_grad(lambda a, b, c: ref.vat_loss(a, b, c, eps, c_u, reg_adv, delta=delta),
                       p, qi, qj)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, **GRAD_TOL)
    # every row has length eps * c_u * |g| / max(|g|, 1e-6): eps * c_u away from the guard
    # (a triple with a huge margin has |g| = sigma(-x) |v| below it, and shorter rows)
    sig = 1.0 / (1.0 + np.exp(p @ (qi - qj)))
    for r, g in zip(delta, (sig * (qi - qj), sig * p, sig * p)):
        gn = np.linalg.norm(g)
        np.testing.assert_allclose(np.linalg.norm(r), eps * c_u * gn / max(gn, 1e-6),
                                   rtol=1e-9)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.floats(0.1, 4.0))
def test_vulnerability_scale_ref_against_its_definition(seed, n_users, lam):
    rng = np.random.default_rng(seed)
    n_users += 1
    loss = rng.uniform(0.01, 2.0, n_users)
    count = rng.integers(0, 3, n_users)
    count[0] = 1                                   # at least one active user
    got = ref.vulnerability_scale_ref(loss, count, lam)
    active = count > 0
    mean = loss[active].mean()
    want = np.where(active, lam / (1.0 + np.exp(-(mean / (loss + 1e-9) - 1.0))), lam / 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.all((got > 0) & (got <= lam))           # sigma saturates at 1 in float64
    # a better-fitted (smaller-loss) user is more vulnerable: larger factor
    order = np.argsort(loss[active])
    assert np.all(np.diff(got[active][order]) <= 1e-15)
    # equal losses give every active user lambda / 2
    np.testing.assert_allclose(ref.vulnerability_scale_ref(np.ones(n_users), count, lam)[active],
                               lam / 2)


def test_user_losses_ref_is_the_mean_over_each_users_triples():
    rng = np.random.default_rng(0)
    P, Q = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    users, items, negs = np.array([0, 0, 2, 0]), np.array([1, 2, 3, 4]), np.array([0, 3, -1, 1])
    loss, count = ref.user_losses_ref(P, Q, users, items, negs, 3)
    np.testing.assert_array_equal(count, [3, 0, 0])
    want = np.mean([ref.bpr_loss(P[0], Q[i], Q[j]) for i, j in [(1, 0), (2, 3), (4, 1)]])
    np.testing.assert_allclose(loss, [want, 0.0, 0.0])
