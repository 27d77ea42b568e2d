"""IRGAN: gradients against central differences, kernels against the NumPy twin, the
REINFORCE estimator against the exact expectation, and the model's own surface.

The derivations are in ``docs/derivations.md`` (the IRGAN section) and next to the
kernels (``aprnb/kernels/irgan.py``).
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import aprnb
from aprnb.kernels._rng import seed_states
from aprnb.kernels.irgan import (REWARD_SIGMOID, REWARD_SOFTPLUS, apply_rows,
                                 apply_rows_parallel, d_epoch_parallel, d_epoch_serial, d_step,
                                 g_block_grads, policy_row, policy_rows_parallel,
                                 policy_rows_serial, sample_rows_serial)
from aprnb.reference import irgan as ref
from checks import assert_same, learned_attributes, num_grad

SETTINGS = settings(max_examples=30, deadline=None)
GRAD_TOL = dict(rtol=1e-6, atol=1e-7)
KINDS = {"sigmoid": REWARD_SIGMOID, "softplus": REWARD_SOFTPLUS}


def tables(rng, n_users, n_items, d, scale=0.5):
    """Random G or D tables in the ranking layout ``[p, 1]``, ``[q, b]``."""
    P = np.hstack([scale * rng.standard_normal((n_users, d)), np.ones((n_users, 1))])
    Q = scale * rng.standard_normal((n_items, d + 1))
    return P, Q


@st.composite
def problems(draw, max_items=7):
    seed = draw(st.integers(0, 2**32 - 1))
    d = draw(st.integers(1, 5))
    n_users = draw(st.integers(1, 4))
    n_items = draw(st.integers(2, max_items))
    return np.random.default_rng(seed), n_users, n_items, d


# -- gradients against central differences (float64) ---------------------------------------------
@SETTINGS
@given(problems())
def test_d_gradients_match_central_differences(problem):
    rng, _, _, d = problem
    pu = np.append(rng.standard_normal(d), 1.0)
    qi, qj = rng.standard_normal(d + 1), rng.standard_normal(d + 1)
    num = num_grad(ref.irgan_d_loss, pu, qi, qj)
    for got, want in zip(ref.irgan_d_grads(pu, qi, qj), num):
        np.testing.assert_allclose(got, want, **GRAD_TOL)


@SETTINGS
@given(problems(), st.sampled_from([0.2, 1.0, 3.0]), st.integers(1, 5))
def test_g_log_softmax_gradient_matches_central_differences(problem, T, K):
    """The surrogate ``-1/K sum_k c_k log p(i_k|u)`` (c fixed), w.r.t. p_u, every q_j and b_j:
    the baseline term ``- sum_j p_j q_j`` included."""
    rng, n_users, n_items, d = problem
    PG, QG = tables(rng, n_users, n_items, d)
    u = int(rng.integers(n_users))
    items = rng.integers(0, n_items, K)
    c = rng.standard_normal(K)

    def loss(P, Q):
        return ref.policy_loss_ref(P, Q, u, items, c, T)

    nP, nQ = num_grad(loss, PG, QG)
    dp, dQ = ref.policy_grads_ref(PG, QG, u, items, c, T)
    np.testing.assert_allclose(dp[:d], nP[u, :d], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dQ, nQ, rtol=1e-5, atol=1e-7)
    # the score-row form the kernel computes, and the exact expected reward's gradient
    s = QG @ PG[u]
    ns, = num_grad(lambda z: -(c * np.log(ref.softmax_ref(z, T)[items])).sum() / K, s)
    np.testing.assert_allclose(ref.policy_score_grad_ref(s, T, items, c), ns, rtol=1e-5,
                               atol=1e-7)
    r = rng.standard_normal(n_items)
    eP, eQ = num_grad(lambda P, Q: ref.expected_reward_ref(P, Q, u, r, T), PG, QG)
    gp, gQ = ref.expected_reward_grads_ref(PG, QG, u, r, T)
    np.testing.assert_allclose(gp[:d], eP[u, :d], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gQ, eQ, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("adagrad", [False, True])
def test_d_step_is_descent_on_loss_plus_l2(adagrad):
    """The reference step is (Adagrad) gradient descent on L_D + reg/2 |rows|^2 (pins the
    regularisation convention); the user's constant column never moves."""
    rng = np.random.default_rng(3)
    PD, QD = tables(rng, 2, 4, 3)
    reg, lr = 0.1, 0.01
    u, i, j = 1, 0, 2

    def full(pu, qi, qj):
        return ref.irgan_d_loss(pu, qi, qj) + reg / 2 * (pu[:-1] @ pu[:-1] + qi @ qi + qj @ qj)

    gp, gi, gj = num_grad(full, PD[u], QD[i], QD[j])
    GP, GQ = (np.full(PD.shape, 0.1), np.full(QD.shape, 0.1)) if adagrad else (None, None)
    P1, Q1, _, _, _ = ref.irgan_d_step_ref(PD, QD, u, i, j, lr, reg, GP, GQ)
    scale = (lambda g: lr * g / np.sqrt(0.1 + g * g)) if adagrad else (lambda g: lr * g)
    np.testing.assert_allclose(P1[u, :-1], PD[u, :-1] - scale(gp[:-1]), rtol=1e-6)
    assert P1[u, -1] == 1.0
    np.testing.assert_allclose(Q1[i], QD[i] - scale(gi), rtol=1e-6)
    np.testing.assert_allclose(Q1[j], QD[j] - scale(gj), rtol=1e-6)


# -- kernels against the twin ---------------------------------------------------------------------
@SETTINGS
@given(problems(), st.booleans(), st.sampled_from([np.float64, np.float32]),
       st.floats(0.0, 0.3))
def test_d_step_kernel_equals_reference(problem, adagrad, dtype, reg):
    rng, n_users, n_items, d = problem
    PD, QD = tables(rng, n_users, n_items, d)
    GP, GQ = (rng.uniform(0.1, 1.0, PD.shape), rng.uniform(0.1, 1.0, QD.shape))
    u, i, j = int(rng.integers(n_users)), int(rng.integers(n_items)), int(rng.integers(n_items))
    want = ref.irgan_d_step_ref(PD, QD, u, i, j, 0.05, reg, *((GP, GQ) if adagrad else ()))
    P, Q, A, B = (np.array(a, dtype=dtype) for a in (PD, QD, GP, GQ))
    loss = d_step(P, Q, A, B, u, i, j, 0.05, reg, adagrad)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(P, want[0], **tol)
    np.testing.assert_allclose(Q, want[1], **tol)
    np.testing.assert_allclose(loss, want[4], **tol)
    if adagrad:
        np.testing.assert_allclose(A, want[2], **tol)
        np.testing.assert_allclose(B, want[3], **tol)


def test_d_epoch_serial_equals_per_triple_steps_and_parallel_trains():
    rng = np.random.default_rng(0)
    PD, QD = tables(rng, 5, 7, 3)
    users, items = rng.integers(0, 5, 40), rng.integers(0, 7, 40)
    negs, order = rng.integers(0, 7, 40), rng.permutation(40)
    G = (np.full(PD.shape, 0.1), np.full(QD.shape, 0.1))
    P, Q, A, B = (a.copy() for a in (PD, QD) + G)
    total = d_epoch_serial(P, Q, A, B, users, items, negs, order, 0.05, 0.01, True, 1)
    P2, Q2, A2, B2 = (a.copy() for a in (PD, QD) + G)
    want = sum(d_step(P2, Q2, A2, B2, users[k], items[k], negs[k], 0.05, 0.01, True)
               for k in order)
    assert_same(P, P2, "PD")
    assert_same(Q, Q2, "QD")
    np.testing.assert_allclose(total, want, rtol=1e-12)
    P3, Q3, A3, B3 = (a.copy() for a in (PD, QD) + G)
    d_epoch_parallel(P3, Q3, A3, B3, users, items, negs, order, 0.05, 0.01, True, 2)
    assert np.all(np.isfinite(P3)) and not np.array_equal(P3, PD)


def _row(s, T, pos, n_per_pos, lam, PD, QD, u, kind, seed, dtype=np.float64):
    """One call of the policy_row kernel; returns (K, loss, mean_c, out, drawn, weights)."""
    n = len(s)
    states = seed_states(np.random.default_rng(seed), 1)
    K = n_per_pos * len(pos)
    out = np.empty(n, dtype=dtype)
    drawn = np.empty(max(1, K), dtype=np.int64)
    weights = np.empty(max(1, K))
    k, loss, mc = policy_row(np.asarray(s, dtype=dtype), T, pos, n_per_pos, lam, PD, QD, u,
                             kind, states, 0, np.empty(n), np.empty(n), out, drawn, weights)
    return k, loss, mc, out, drawn[:k], weights[:k]


@SETTINGS
@given(problems(), st.sampled_from([0.2, 1.0]), st.sampled_from([0.0, 0.2, 0.7]),
       st.sampled_from(list(KINDS)), st.integers(0, 1000), st.integers(1, 3))
def test_policy_row_kernel_equals_reference(problem, T, lam, reward, seed, n_per_pos):
    """Given the kernel's draws, its weights ``c_k = p/p_n * r``, its loss and its score-gradient
    row equal the twin's; the draws are items of the proposal's support."""
    rng, n_users, n_items, d = problem
    PG, QG = tables(rng, n_users, n_items, d)
    PD, QD = tables(rng, n_users, n_items, d)
    u = int(rng.integers(n_users))
    pos = np.sort(rng.choice(n_items, int(rng.integers(1, n_items + 1)), replace=False))
    s = QG @ PG[u]
    K, loss, mc, out, drawn, c = _row(s, T, pos, n_per_pos, lam, PD, QD, u, KINDS[reward],
                                      seed)
    assert K == n_per_pos * len(pos) and np.all((drawn >= 0) & (drawn < n_items))
    p = ref.softmax_ref(s, T)
    pn = ref.proposal_ref(p, pos, lam)
    r = ref.reward_ref(QD @ PD[u], reward)
    np.testing.assert_allclose(c, ref.policy_weights_ref(p, pn, r, drawn), rtol=1e-12)
    np.testing.assert_allclose(out, ref.policy_score_grad_ref(s, T, drawn, c), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(loss, ref.policy_loss_ref(PG, QG, u, drawn, c, T), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(mc, c.mean(), rtol=1e-12)


def test_policy_row_without_items_draws_nothing():
    PD, QD = tables(np.random.default_rng(0), 1, 4, 2)
    K, loss, mc, out, _, _ = _row(np.zeros(4), 1.0, np.zeros(0, dtype=np.int32), 2, 0.2, PD, QD,
                                  0, REWARD_SIGMOID, 0)
    assert (K, loss, mc) == (0, 0.0, 0.0) and not out.any()


@SETTINGS
@given(problems(), st.booleans(), st.sampled_from([np.float64, np.float32]),
       st.sampled_from([0.0, 0.1]))
def test_g_block_step_equals_reference(problem, adagrad, dtype, reg):
    """g_block_grads (BLAS) + apply_rows == the twin's loops over users and items."""
    rng, n_users, n_items, d = problem
    PG, QG = tables(rng, n_users, n_items, d)
    users = rng.permutation(n_users)[:int(rng.integers(1, n_users + 1))]
    Gs = rng.standard_normal((len(users), n_items))
    GP, GQ = rng.uniform(0.1, 1, PG.shape), rng.uniform(0.1, 1, QG.shape)
    want = ref.g_block_step_ref(PG, QG, users, Gs, 0.05, reg, *((GP, GQ) if adagrad else ()))
    P, Q, A, B, G = (np.array(a, dtype=dtype) for a in (PG, QG, GP, GQ, Gs))
    gP, gQ = g_block_grads(P, Q, users, G, reg)
    apply_rows(P, A, users, gP, d, 0.05, adagrad)
    apply_rows(Q, B, np.arange(n_items), gQ, d + 1, 0.05, adagrad)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(P, want[0], **tol)
    np.testing.assert_allclose(Q, want[1], **tol)
    if adagrad:
        np.testing.assert_allclose(B, want[3], **tol)


def test_policy_rows_parallel_equals_serial():
    """G's rows only read shared tables: the parallel twin equals the serial one bitwise."""
    rng = np.random.default_rng(1)
    X = sp.random(6, 9, density=0.4, format="csr", random_state=2)
    X.data[:] = 1
    PG, QG = tables(rng, 6, 9, 3)
    PD, QD = tables(rng, 6, 9, 3)
    users = np.arange(6)
    S = PG @ QG.T
    outs = []
    for kern in (policy_rows_serial, policy_rows_parallel):
        Gs = np.empty_like(S)
        stats = kern(S, 0.5, users, X.indptr, X.indices, 2, 0.2, PD, QD, REWARD_SIGMOID,
                     seed_states(np.random.default_rng(0), 3), 3, Gs)
        outs.append((Gs, stats))
    assert_same(outs[0][0], outs[1][0], "Gs")
    assert outs[0][1] == outs[1][1]


@pytest.mark.parametrize("adagrad", [False, True])
def test_apply_rows_parallel_equals_serial(adagrad):
    rng = np.random.default_rng(4)
    A, G = rng.standard_normal((50, 5)), rng.uniform(0.1, 1, (50, 5))
    rows, g = rng.permutation(50)[:30], rng.standard_normal((30, 5))
    out = []
    for kern in (apply_rows, apply_rows_parallel):
        a, b = A.copy(), G.copy()
        kern(a, b, rows, g, 4, 0.1, adagrad)
        out.append((a, b))
    assert_same(out[0], out[1], "rows")
    assert np.array_equal(out[0][0][:, 4], A[:, 4])


def test_sample_rows_follow_the_softmax():
    """D's generated items: frequencies within 5 binomial sigmas of softmax(s / T)."""
    s = np.array([[0.5, -1.0, 2.0, 0.0, 1.0]])
    T, n = 0.7, 200_000
    out = np.empty(n, dtype=np.int64)
    sample_rows_serial(s, T, np.zeros(1, dtype=np.int64), np.array([n]), np.array([0]),
                       seed_states(np.random.default_rng(0), 1), 1, out)
    p = ref.softmax_ref(s[0], T)
    freq = np.bincount(out, minlength=5) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)), (freq, p)


# -- the REINFORCE expectation test ---------------------------------------------------------------
N_DRAWS = 20_000
Z = 5.0           # per coordinate; a seeded test, and P(|N(0,1)| > 5) = 6e-7 per coordinate


def _exact_moments(p, pn, r, T, K):
    """Mean and standard deviation of ONE call's score-gradient row, by enumeration.

    A call averages ``K`` i.i.d. terms ``X(i)_j = -(p_i/pn_i) r_i (delta_ij - p_j) / T``
    with ``i ~ pn``; its mean is ``sum_i pn_i X(i) = -p_j (r_j - J) / T`` (the exact
    ``-dJ/ds_j``) and its variance ``Var(X) / K``.
    """
    n = len(p)
    X = np.array([-(p[i] / pn[i]) * r[i] * (np.eye(n)[i] - p) / T for i in range(n)])
    mean = pn @ X
    var = pn @ (X - mean) ** 2
    return mean, np.sqrt(var / K)


def _policy_gradient_check(estimates, exact_mean, sd):
    """True when the average of the estimates is within Z standard errors of the exact mean
    in every coordinate."""
    err = np.abs(estimates.mean(axis=0) - exact_mean)
    return bool(np.all(err <= Z * sd / np.sqrt(len(estimates)) + 1e-12)), err


@pytest.mark.parametrize("lam,T,reward", [(0.0, 1.0, "sigmoid"), (0.2, 0.5, "sigmoid"),
                                          (0.6, 1.0, "softplus")])
def test_reinforce_average_converges_to_exact_policy_gradient(lam, T, reward):
    """On 6 items the exact gradient ``d/dtheta sum_i p_theta(i|u) r(u,i)`` is enumerated; the
    average of N_DRAWS seeded kernel estimates (importance-sampled when lam > 0) must lie within
    Z standard errors of it, the errors taken from the estimator's exact variance. The same
    check must reject two wrong estimators built from the same draws: without the baseline
    term ``-p_j`` of the log-softmax gradient, and without the importance weights ``p/p_n``."""
    rng = np.random.default_rng(7)
    n_items, d = 6, 3
    PG, QG = tables(rng, 1, n_items, d, scale=0.8)
    PD, QD = tables(rng, 1, n_items, d, scale=1.0)
    pos = np.array([1, 4], dtype=np.int32)
    n_per_pos = 2
    K = n_per_pos * len(pos)
    s = QG @ PG[0]
    p = ref.softmax_ref(s, T)
    pn = ref.proposal_ref(p, pos, lam)
    r = ref.reward_ref(QD @ PD[0], reward)
    mean, sd = _exact_moments(p, pn, r, T, K)
    # the enumerated mean is the exact gradient of J (up to the sign of a loss)
    gp, gQ = ref.expected_reward_grads_ref(PG, QG, 0, r, T)
    np.testing.assert_allclose(-mean, p * (r - p @ r) / T, rtol=1e-12)
    np.testing.assert_allclose(np.outer(-mean, PG[0]), gQ, rtol=1e-10, atol=1e-14)

    states = seed_states(np.random.default_rng(11), 1)
    est, no_base, no_weight = (np.empty((N_DRAWS, n_items)) for _ in range(3))
    pscratch, cdf = np.empty(n_items), np.empty(n_items)
    drawn, weights = np.empty(K, dtype=np.int64), np.empty(K)
    for t in range(N_DRAWS):
        policy_row(s, T, pos, n_per_pos, lam, PD, QD, 0, KINDS[reward], states, 0, pscratch,
                   cdf, est[t], drawn, weights)
        one_hot = np.bincount(drawn, weights=weights, minlength=n_items)
        no_base[t] = -one_hot / (K * T)                       # drops "+ C p_j"
        plain = np.bincount(drawn, weights=r[drawn], minlength=n_items)
        no_weight[t] = (r[drawn].sum() * p - plain) / (K * T)  # c_k = r_k, no p/p_n
    ok, err = _policy_gradient_check(est, mean, sd)
    assert ok, (err, Z * sd / np.sqrt(N_DRAWS))
    # the parameter gradients through the chain rule (g_block_grads) converge likewise
    gP, gQhat = g_block_grads(PG, QG, np.array([0]), est.mean(axis=0, keepdims=True), 0.0)
    bound = Z * sd / np.sqrt(N_DRAWS)
    np.testing.assert_array_less(np.abs(gP[0, :d] + gp[:d]), np.abs(QG[:, :d]).T @ bound + 1e-12)
    np.testing.assert_array_less(np.abs(gQhat + gQ), np.outer(bound, np.abs(PG[0])) + 1e-12)
    # the check has power: the wrong estimators fail it
    assert not _policy_gradient_check(no_base, mean, sd)[0]
    if lam > 0:
        assert not _policy_gradient_check(no_weight, mean, sd)[0]


# -- the model ------------------------------------------------------------------------------------
SMALL = dict(factors=4, epochs=2, bpr_epochs=0, n_threads=1, random_state=0,
             show_progress=False)


def test_starts_from_bpr_with_zero_biases_and_keeps_init(small_synthetic):
    bpr = aprnb.BPR(factors=4, epochs=3, n_threads=1, random_state=0,
                    show_progress=False).fit(small_synthetic)
    P0 = bpr.user_factors_.copy()
    m = aprnb.IRGAN(**dict(SMALL, epochs=0)).fit(small_synthetic, init=bpr)
    np.testing.assert_array_equal(m.user_factors_[:, :4], P0)
    assert np.all(m.user_factors_[:, 4] == 1) and np.all(m.item_factors_[:, 4] == 0)
    np.testing.assert_array_equal(m.d_item_factors_[:, :4], bpr.item_factors_)
    np.testing.assert_array_equal(m.score([0]), bpr.score([0]))
    m2 = aprnb.IRGAN(**SMALL).fit(small_synthetic, init=bpr)
    np.testing.assert_array_equal(bpr.user_factors_, P0)
    assert np.all(m2.user_factors_[:, 4] == 1)            # the constant column stays
    assert np.any(m2.item_factors_[:, 4] != 0)            # the biases learn
    assert not np.array_equal(m2.d_item_factors_, m2.item_factors_)


def test_init_none_pretrains_bpr_in_the_history(small_synthetic):
    m = aprnb.IRGAN(**dict(SMALL, bpr_epochs=3)).fit(small_synthetic)
    assert [h["mode"] for h in m.history_] == ["bpr"] * 3 + ["irgan"] * 2
    assert [h["epoch"] for h in m.history_] == [1, 2, 3, 4, 5]
    bpr = aprnb.BPR(factors=4, epochs=3, n_threads=1, random_state=0, show_progress=False)
    assert [h["loss"] for h in m.history_[:3]] == \
        [h["loss"] for h in bpr.fit(small_synthetic).history_]
    for h in m.history_[3:]:
        assert {"d_loss", "g_loss", "g_reward", "seconds"} <= set(h)


def test_save_load_round_trips_the_extra_members_and_continues(small_synthetic, tmp_path):
    m = aprnb.IRGAN(**SMALL).fit(small_synthetic)
    path = m.save(tmp_path / "m.npz")
    back = aprnb.load(path)
    for name in aprnb.IRGAN._extra_members:
        assert_same(getattr(back, name + "_"), getattr(m, name + "_"), name)
    assert_same(back.optimizer_state_, m.optimizer_state_, "optimizer_state_")
    a = aprnb.IRGAN(**dict(SMALL, epochs=1)).fit(small_synthetic, init=m)
    b = aprnb.IRGAN(**dict(SMALL, epochs=1)).fit(small_synthetic, init=back)
    assert_same(a.user_factors_, b.user_factors_, "user_factors_")
    assert_same(a.d_item_factors_, b.d_item_factors_, "d_item_factors_")


def test_load_rejects_inconsistent_extra_members(small_synthetic, tmp_path):
    m = aprnb.IRGAN(**SMALL).fit(small_synthetic)
    m.d_user_factors_ = m.d_user_factors_[:, :3].copy()
    with pytest.raises(ValueError, match="d_user_factors"):
        aprnb.load(m.save(tmp_path / "a.npz"))
    m = aprnb.IRGAN(**SMALL).fit(small_synthetic)
    m.g_opt_items_ = np.zeros_like(m.g_opt_items_)
    with pytest.raises(ValueError, match="g_opt_items"):
        aprnb.load(m.save(tmp_path / "b.npz"))


@pytest.mark.parametrize("kw,exc,fragment", [
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"sample_lambda": 1.0}, ValueError, "sample_lambda"),
    ({"reward": "log"}, ValueError, "reward"),
    ({"g_samples": 0}, ValueError, "g_samples"),
    ({"batch_users": 1.5}, TypeError, "batch_users"),
    ({"d_epochs": -1}, ValueError, "d_epochs"),
    ({"g_learning_rate": 0.0}, ValueError, "g_learning_rate"),
])
def test_bad_parameters_are_refused_and_the_model_kept(kw, exc, fragment, small_synthetic):
    m = aprnb.IRGAN(**dict(SMALL, **kw))
    with pytest.raises(exc, match=fragment):
        m.fit(small_synthetic)
    assert learned_attributes(m) == []


def test_bad_init_is_refused(small_synthetic):
    m = aprnb.IRGAN(**SMALL)
    bad = aprnb.BPR(factors=3, epochs=1, n_threads=1, show_progress=False).fit(small_synthetic)
    with pytest.raises(ValueError, match="factors=4"):
        m.fit(small_synthetic, init=bad)
    with pytest.raises(TypeError, match="init"):
        m.fit(small_synthetic, init="model.npz")
    assert learned_attributes(m) == []


def test_divergence_rolls_back_to_the_last_good_round(small_synthetic):
    m = aprnb.IRGAN(**dict(SMALL, optimizer="sgd", d_learning_rate=1e30, epochs=3))
    with pytest.raises(aprnb.DivergenceError, match="round 1"):
        m.fit(small_synthetic)
    assert np.all(np.isfinite(m.d_user_factors_)) and m.history_ == []
