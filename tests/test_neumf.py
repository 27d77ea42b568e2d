"""NeuMF: the NumPy twin against finite differences, the kernels against the twin.

* every gradient of :mod:`aprnb.reference.neumf` (embeddings, each ``W_l``, ``b_l``,
  ``h``, ``b_0``) against float64 central differences, away from ReLU kinks;
  the adversarial objective with the perturbation held constant, likewise;
* the mini-batch step of the twin is gradient descent on the stated batch
  objective (pins the summed loss and the L2 convention);
* the epoch kernels (serial, and parallel on two threads) equal the twin's
  batch steps on hypothesis inputs, clean and adversarial, SGD and Adagrad;
* the scorer equals the twin's forward pass (tiles by slice and by index, pairs,
  subsets).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aprnb import NeuMF
from aprnb._threads import numba_threads
from aprnb.kernels.neumf import epoch_parallel, epoch_serial, sample_losses
from aprnb.models._neumf_scorer import NeuMFScorer
from aprnb.models.neumf import _structure, check_layers
from aprnb.reference import neumf as R
from checks import num_grad

SETTINGS = settings(max_examples=25, deadline=None)


def num_grad1(f, a):
    """Central differences of the scalar ``f(a)`` w.r.t. every element of ``a``."""
    (g,) = num_grad(f, a)
    return g


@st.composite
def nets(draw):
    """``(F, layers, p, q, theta, label, seed)`` with random small shapes."""
    F = draw(st.integers(1, 4))
    half = draw(st.integers(1, 3))
    depth = draw(st.integers(1, 3))
    layers = (2 * half,) + tuple(draw(st.integers(1, 5)) for _ in range(depth))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    W = F + half
    p, q = rng.normal(size=W), rng.normal(size=W)
    theta = rng.normal(size=R.layout(F, layers)[1])
    label = draw(st.integers(0, 1))
    return F, layers, p, q, theta, label, rng


def away_from_kinks(p, q, theta, F, layers, margin=1e-3):
    """True when no pre-activation is within ``margin`` of zero (FD would cross a kink)."""
    Ws, bs, _, _ = R.unpack(theta, F, layers)
    a = np.concatenate([p[F:], q[F:]])
    for W, b in zip(Ws, bs):
        z = W @ a + b
        if np.min(np.abs(z)) < margin:
            return False
        a = np.maximum(z, 0)
    return True


@SETTINGS
@given(nets())
def test_every_gradient_matches_central_differences(net):
    F, layers, p, q, theta, t, _ = net
    assume(away_from_kinks(p, q, theta, F, layers))
    gp, gq, gt = R.grads(p, q, t, theta, F, layers)
    np.testing.assert_allclose(gp, num_grad1(lambda x: R.loss(x, q, t, theta, F, layers), p),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gq, num_grad1(lambda x: R.loss(p, x, t, theta, F, layers), q),
                               rtol=1e-6, atol=1e-7)
    # theta holds every W_l, b_l, h and b_0 (layout()); all are checked element by element
    np.testing.assert_allclose(gt, num_grad1(lambda x: R.loss(p, q, t, x, F, layers), theta),
                               rtol=1e-6, atol=1e-7)


def test_gradients_cover_relu_both_sides():
    """A net where some units are off: their weights get zero gradient, the FD agrees."""
    F, layers = 2, (4, 3, 2)
    rng = np.random.default_rng(5)
    p, q = rng.normal(size=4), rng.normal(size=4)
    theta = rng.normal(size=R.layout(F, layers)[1])
    Ws, bs, _, _ = R.unpack(theta, F, layers)
    bs[0][0] = -50.0                       # unit 0 of layer 1 is off
    bs[0][1] = 50.0                        # unit 1 is on
    assert away_from_kinks(p, q, theta, F, layers)
    gp, gq, gt = R.grads(p, q, 1, theta, F, layers)
    gW, _, _, _ = R.unpack(gt, F, layers)
    assert np.all(gW[0][0] == 0) and np.any(gW[0][1] != 0)
    np.testing.assert_allclose(gt, num_grad1(lambda x: R.loss(p, q, 1, x, F, layers), theta),
                               rtol=1e-6, atol=1e-7)


@SETTINGS
@given(nets(), st.floats(0.01, 2.0), st.floats(0.0, 3.0))
def test_adversarial_gradient_with_the_perturbation_held(net, eps, reg_adv):
    F, layers, p, q, theta, t, _ = net
    Dp, Dq = R.perturbation(p, q, t, theta, F, layers, eps)
    assume(away_from_kinks(p, q, theta, F, layers)
           and away_from_kinks(p + Dp, q + Dq, theta, F, layers))
    gp, gq, gt = R.adv_grads(p, q, t, theta, F, layers, Dp, Dq, reg_adv)

    def obj(pp, qq, th):
        return R.adv_loss(pp, qq, t, th, F, layers, Dp, Dq, reg_adv)
    np.testing.assert_allclose(gp, num_grad1(lambda x: obj(x, q, theta), p), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(gq, num_grad1(lambda x: obj(p, x, theta), q), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(gt, num_grad1(lambda x: obj(p, q, x), theta), rtol=1e-6,
                               atol=1e-7)


@SETTINGS
@given(nets(), st.floats(0.01, 2.0))
def test_perturbation_is_the_normalised_clean_gradient_per_part(net, eps):
    F, layers, p, q, theta, t, _ = net
    Dp, Dq = R.perturbation(p, q, t, theta, F, layers, eps)
    gp, gq, _ = R.grads(p, q, t, theta, F, layers)
    for D, g in ((Dp, gp), (Dq, gq)):
        for part in (slice(0, F), slice(F, None)):
            n = np.linalg.norm(g[part])
            if n > 1e-5:
                np.testing.assert_allclose(D[part], eps * g[part] / n, rtol=1e-9, atol=1e-12)
                assert np.linalg.norm(D[part]) == pytest.approx(eps)


def test_batch_step_is_descent_on_the_batch_objective():
    """SGD step of the twin == theta - lr * grad of sum(loss) + reg/2 |rows|^2 per sample
    + reg/2 |weights|^2 once (numerically differentiated)."""
    F, layers = 2, (4, 3)
    rng = np.random.default_rng(1)
    P, Q = rng.normal(size=(3, 4)), rng.normal(size=(4, 4))
    theta = rng.normal(size=R.layout(F, layers)[1])
    users, items, labels = np.array([0, 1, 0, 2]), np.array([1, 1, 3, 0]), [1, 0, 0, 1]
    reg, lr = 0.3, 0.1
    wm = R.weight_mask(F, layers)

    def objective(P_, Q_, th):
        total = 0.5 * reg * np.sum(wm * th * th)
        for u, i, t in zip(users, items, labels):
            total += R.loss(P_[u], Q_[i], t, th, F, layers)
            total += 0.5 * reg * (P_[u] @ P_[u] + Q_[i] @ Q_[i])
        return total
    P1, Q1, th1, *_ = R.batch_step_ref(P, Q, theta, users, items, labels, F, layers, lr, reg)
    np.testing.assert_allclose(P1, P - lr * num_grad1(lambda x: objective(x, Q, theta), P),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Q1, Q - lr * num_grad1(lambda x: objective(P, x, theta), Q),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(th1, theta - lr * num_grad1(lambda x: objective(P, Q, x), theta),
                               rtol=1e-6, atol=1e-8)


# -- kernels against the twin ------------------------------------------------------------

@st.composite
def problems(draw):
    F = draw(st.integers(1, 4))
    half = draw(st.integers(1, 3))
    layers = (2 * half,) + tuple(draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 3))))
    n_users, n_items = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    n = draw(st.integers(1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = F + half
    P, Q = rng.normal(size=(n_users, W)), rng.normal(size=(n_items, W))
    theta = rng.normal(size=R.layout(F, layers)[1]) * 0.7
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    labels = rng.integers(0, 2, n).astype(np.int8)
    batch = draw(st.integers(1, n))
    return F, layers, P, Q, theta, users, items, labels, batch


def run_kernel(kern, parts, prob, lr, reg, ada, eps, reg_adv, adv, acc=0.1, branch="both"):
    F, layers, P, Q, theta, users, items, labels, batch = prob
    dims, offs, aoff, size = _structure(F, layers)
    W = P.shape[1]
    P, Q, theta = P.copy(), Q.copy(), theta.copy()
    if ada:
        G = (np.full(P.shape, acc), np.full(Q.shape, acc), np.full((1, size), acc))
    else:
        G = (np.empty((0, W)), np.empty((0, W)), np.empty((0, size)))
    with numba_threads(parts):
        loss = kern(P, Q, theta, *G, users, items, labels, batch, parts, dims, offs, aoff, F,
                    layers[0] // 2, R.weight_mask(F, layers), R.branch_mask(F, layers, branch),
                    lr, reg, ada, eps, reg_adv, adv)
    return P, Q, theta, G, loss


def run_twin(prob, lr, reg, ada, eps, reg_adv, adv, acc=0.1, branch="both"):
    F, layers, P, Q, theta, users, items, labels, batch = prob
    size = R.layout(F, layers)[1]
    G = (np.full(P.shape, acc), np.full(Q.shape, acc), np.full(size, acc)) if ada else \
        (None, None, None)
    total = 0.0
    for b0 in range(0, len(users), batch):
        sl = slice(b0, b0 + batch)
        P, Q, theta, GP, GQ, Gt, loss = R.batch_step_ref(
            P, Q, theta, users[sl], items[sl], labels[sl], F, layers, lr, reg, *G, eps=eps,
            reg_adv=reg_adv, adversarial=adv, gmask=R.branch_mask(F, layers, branch))
        G = (GP, GQ, Gt)
        total += loss
    return P, Q, theta, G, total


@SETTINGS
@given(problems(), st.booleans(), st.booleans(), st.floats(0.0, 0.3), st.floats(0.05, 1.0),
       st.floats(0.0, 2.0), st.sampled_from(["both", "gmf", "mlp"]))
def test_serial_epoch_equals_the_twin(prob, ada, adv, reg, eps, reg_adv, branch):
    lr = 0.05
    P, Q, th, G, loss = run_kernel(epoch_serial, 1, prob, lr, reg, ada, eps, reg_adv, adv,
                                   branch=branch)
    P2, Q2, th2, G2, loss2 = run_twin(prob, lr, reg, ada, eps, reg_adv, adv, branch=branch)
    frozen = R.branch_mask(prob[0], prob[1], branch) == 0
    assert np.array_equal(th[frozen], prob[4][frozen])      # the other branch's h stays
    tol = dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(P, P2, **tol)
    np.testing.assert_allclose(Q, Q2, **tol)
    np.testing.assert_allclose(th, th2, **tol)
    assert loss == pytest.approx(loss2, rel=1e-9, abs=1e-10)
    if ada:
        np.testing.assert_allclose(G[0], G2[0], **tol)
        np.testing.assert_allclose(G[1], G2[1], **tol)
        np.testing.assert_allclose(G[2][0], G2[2], **tol)


def test_branch_mask_freezes_exactly_the_other_branchs_output_weights():
    """``h = [h^G (F) | h^M (layers[-1])]`` then ``b_0`` close the flat vector; the GMF
    branch freezes ``h^M``, the MLP branch ``h^G``, and nothing else."""
    F, layers = 3, (6, 4, 2)
    offs, size = R.layout(F, layers)
    ho = offs[-2]
    assert ho + F + layers[-1] == offs[-1] == size - 1
    assert np.array_equal(R.branch_mask(F, layers), np.ones(size))
    for branch, frozen in (("gmf", range(ho + F, ho + F + 2)), ("mlp", range(ho, ho + F))):
        m = R.branch_mask(F, layers, branch)
        assert np.flatnonzero(m == 0).tolist() == list(frozen)
        assert set(np.unique(m)) == {0.0, 1.0}
    for bad in ("GMF", "", None, "neumf"):
        with pytest.raises(ValueError, match="branch must be 'both', 'gmf' or 'mlp'"):
            R.branch_mask(F, layers, bad)


@settings(max_examples=15, deadline=None)
@given(problems(), st.booleans(), st.booleans())
def test_two_threads_equal_one_up_to_rounding(prob, ada, adv):
    """The race-free scheme: two parts on two threads == one part on one thread."""
    prob = prob[:-1] + (len(prob[5]),)            # one mini-batch: every sample
    one = run_kernel(epoch_serial, 1, prob, 0.05, 0.01, ada, 0.5, 1.0, adv)
    two = run_kernel(epoch_parallel, 2, prob, 0.05, 0.01, ada, 0.5, 1.0, adv)
    for a, b in zip(one[:3], two[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_float32_epoch_close_to_the_twin():
    rng = np.random.default_rng(3)
    F, layers = 3, (6, 4, 2)
    W = 6
    P, Q = rng.normal(size=(4, W)), rng.normal(size=(5, W))
    theta = rng.normal(size=R.layout(F, layers)[1]) * 0.5
    users, items = rng.integers(0, 4, 20), rng.integers(0, 5, 20)
    labels = rng.integers(0, 2, 20).astype(np.int8)
    prob64 = (F, layers, P, Q, theta, users, items, labels, 4)
    prob32 = (F, layers, P.astype(np.float32), Q.astype(np.float32),
              theta.astype(np.float32), users, items, labels, 4)
    out32 = run_kernel(epoch_serial, 1, prob32, np.float32(0.05), np.float32(0.01), True,
                       np.float32(0.5), np.float32(1.0), True, acc=np.float32(0.1))
    out64 = run_twin(prob64, 0.05, 0.01, True, 0.5, 1.0, True)
    assert out32[0].dtype == np.float32
    for a, b in zip(out32[:3], out64[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def wide_problem(seed=11, n=48, batch=16):
    """Widths past the SIMD width (the hypothesis nets are at most 5 wide, so the
    vectorised loop bodies of the kernels would otherwise never run): rows of
    width 9 + 20, a tower 40 -> 33 -> 17 -> 9, with the odd sizes exercising
    every remainder loop."""
    rng = np.random.default_rng(seed)
    F, layers = 9, (40, 33, 17, 9)
    W = F + layers[0] // 2
    P, Q = rng.normal(size=(6, W)) * 0.5, rng.normal(size=(7, W)) * 0.5
    theta = rng.normal(size=R.layout(F, layers)[1]) * 0.3
    users, items = rng.integers(0, 6, n), rng.integers(0, 7, n)
    labels = rng.integers(0, 2, n).astype(np.int8)
    return F, layers, P, Q, theta, users, items, labels, batch


@pytest.mark.parametrize("adv", [False, True])
def test_wide_epoch_equals_the_twin_and_threads_agree(adv):
    prob = wide_problem()
    tol = dict(rtol=1e-9, atol=1e-10)
    one = run_kernel(epoch_serial, 1, prob, 0.05, 0.01, True, 0.5, 1.0, adv)
    want = run_twin(prob, 0.05, 0.01, True, 0.5, 1.0, adv)
    for a, b in zip(one[:3], want[:3]):
        np.testing.assert_allclose(a, b, **tol)
    assert one[4] == pytest.approx(want[4], rel=1e-9)
    two = run_kernel(epoch_parallel, 2, prob, 0.05, 0.01, True, 0.5, 1.0, adv)
    for a, b in zip(one[:3], two[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    again = run_kernel(epoch_parallel, 2, prob, 0.05, 0.01, True, 0.5, 1.0, adv)
    for a, b in zip(two[:3], again[:3]):
        assert np.array_equal(a, b)               # a fixed thread count is bitwise stable


# -- the scorer ---------------------------------------------------------------------------

@SETTINGS
@given(problems())
def test_scorer_equals_the_twin_forward_pass(prob):
    F, layers, P, Q, theta, users, items, labels, _ = prob
    S = NeuMFScorer(P, Q, theta, F, layers)
    assert (S.n_users, S.n_items, S.dtype) == (P.shape[0], Q.shape[0], P.dtype)
    allu = np.arange(P.shape[0])
    want = R.scores_ref(P, Q, theta, F, layers, allu, np.arange(Q.shape[0]))
    out = np.empty((P.shape[0], Q.shape[0]))
    S.tile(S.rows(allu), slice(0, Q.shape[0]), out)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10)
    sub = np.empty((len(users), len(items)))
    S.tile(S.rows(users), items, sub)
    np.testing.assert_allclose(sub, want[np.ix_(users, items)], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(S.pairs(users, items), want[users, items], rtol=1e-10,
                               atol=1e-10)
    part = S.subset(users[::-1])
    assert part.n_users == len(users)
    out2 = np.empty((len(users), Q.shape[0]))
    part.tile(part.rows(np.arange(len(users))), slice(1, None), out2[:, :Q.shape[0] - 1])
    np.testing.assert_allclose(out2[:, :Q.shape[0] - 1], want[users[::-1], 1:], rtol=1e-10,
                               atol=1e-10)
    dims, offs, aoff, _ = _structure(F, layers)
    losses = sample_losses(P, Q, theta, users, items, labels, dims, offs, aoff, F,
                           layers[0] // 2)
    np.testing.assert_allclose(losses, [R.loss(P[u], Q[i], t, theta, F, layers)
                                        for u, i, t in zip(users, items, labels)], rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_scorer_equals_the_twin_across_blocks(dtype):
    """Tiles and pairs over several blocks of ``PAIR_BLOCK`` pairs, the last one short."""
    from aprnb.kernels.neumf import PAIR_BLOCK
    F, layers, P, Q, theta = wide_problem()[:5]
    rng = np.random.default_rng(5)
    Q = rng.normal(size=(2 * PAIR_BLOCK + 7, Q.shape[1])) * 0.5
    S = NeuMFScorer(P.astype(dtype), Q.astype(dtype), theta.astype(dtype), F, layers)
    allu, alli = np.arange(P.shape[0]), np.arange(Q.shape[0])
    want = R.scores_ref(P, Q, theta, F, layers, allu, alli)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    out = np.empty((P.shape[0], Q.shape[0]), dtype=dtype)
    S.tile(S.rows(allu), slice(0, Q.shape[0]), out)
    np.testing.assert_allclose(out, want, **tol)
    cols = rng.permutation(Q.shape[0])[:PAIR_BLOCK + 3]
    sub = np.empty((P.shape[0], len(cols)), dtype=dtype)
    S.tile(S.rows(allu), cols, sub)
    np.testing.assert_allclose(sub, want[:, cols], **tol)
    u = rng.integers(0, P.shape[0], 3 * PAIR_BLOCK + 1)
    i = rng.integers(0, Q.shape[0], 3 * PAIR_BLOCK + 1)
    np.testing.assert_allclose(S.pairs(u, i), want[u, i], **tol)


# -- the model ----------------------------------------------------------------------------

FAST = dict(factors=4, layers=(8, 4), epochs=2, batch_size=16, n_threads=1, random_state=0,
            show_progress=False)


def test_seeded_fit_bitwise_reproducible(small_synthetic):
    a = NeuMF(**FAST).fit(small_synthetic)
    b = NeuMF(**FAST).fit(small_synthetic)
    assert np.array_equal(a.user_factors_, b.user_factors_)
    assert np.array_equal(a.dense_weights_, b.dense_weights_)
    assert a.user_factors_.shape[1] == NeuMF._width(a.get_params()) == 8


@pytest.mark.parametrize("bad, exc, fragment", [
    (dict(layers=(7, 4)), ValueError, "even"),
    (dict(layers=(8,)), ValueError, "hidden layer"),
    (dict(layers="64"), TypeError, "sequence"),
    (dict(negatives=0), ValueError, "negatives"),
    (dict(adversarial="yes"), TypeError, "adversarial"),
])
def test_bad_parameters(bad, exc, fragment, small_synthetic):
    with pytest.raises(exc, match=fragment):
        NeuMF(**{**FAST, **bad}).fit(small_synthetic)


def test_warm_start_continues_and_checks_shapes(small_synthetic):
    base = NeuMF(**FAST).fit(small_synthetic)
    before = base.dense_weights_.copy()
    more = NeuMF(**{**FAST, "adversarial": True}).fit(small_synthetic, init=base)
    assert np.array_equal(base.dense_weights_, before)
    assert [h["mode"] for h in more.history_] == ["adversarial"] * 2
    with pytest.raises(ValueError, match="layers"):
        NeuMF(**{**FAST, "layers": (8, 2)}).fit(small_synthetic, init=base)
    assert check_layers([4, 2]) == (4, 2)


# -- NCF pre-training -----------------------------------------------------------------------

def _twin_scores(P, Q, theta, model):
    return R.scores_ref(P, Q, theta, model.factors, model.layers, np.arange(P.shape[0]),
                        np.arange(Q.shape[0]))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_pretraining_fuses_a_gmf_and_an_mlp_fit(alpha, small_synthetic):
    """Each branch trains alone (the other's h stays zero and its loss falls), and the
    fused model scores alpha * y_GMF + (1 - alpha) * y_MLP of the two fits."""
    from aprnb.kernels._rng import seed_states
    from aprnb.models._training import positives, sampling_filter
    model = NeuMF(**{**FAST, "pretrain_epochs": 3, "alpha": alpha})
    X = small_synthetic.tocsr()
    rng = np.random.default_rng(0)
    history = []
    gmf, mlp = model._pretrain(X, positives(X), sampling_filter(X, 1), seed_states(rng, 1),
                               rng, np.float64, 1, history)
    hG, hM, _ = model._h_parts()
    assert not gmf[2][hM].any() and not mlp[2][hG].any()
    assert gmf[2][hG].any() and mlp[2][hM].any()
    for mode in ("pretrain-gmf", "pretrain-mlp"):
        losses = [h["loss"] for h in history if h["mode"] == mode]
        assert len(losses) == 3 and losses[-1] < losses[0]
    fused = model._fuse(gmf, mlp)
    want = alpha * _twin_scores(*gmf[:3], model) + (1 - alpha) * _twin_scores(*mlp[:3], model)
    np.testing.assert_allclose(_twin_scores(*fused[:3], model), want, rtol=1e-10, atol=1e-12)
    assert all((a == model.initial_accumulator).all() for a in fused[3:])


def test_pretrained_fit_records_its_phases_and_is_reproducible(small_synthetic):
    params = {**FAST, "pretrain_epochs": 2, "epochs": 1}
    a = NeuMF(**params).fit(small_synthetic)
    b = NeuMF(**params).fit(small_synthetic)
    assert [h["mode"] for h in a.history_] == ["pretrain-gmf"] * 2 + ["pretrain-mlp"] * 2 + \
        ["clean"]
    assert np.array_equal(a.user_factors_, b.user_factors_)
    assert np.array_equal(a.dense_weights_, b.dense_weights_)
    plain = NeuMF(**{**params, "pretrain_epochs": 0}).fit(small_synthetic)
    assert not np.array_equal(plain.dense_weights_, a.dense_weights_)
    with pytest.raises(ValueError, match="pretrain_epochs"):
        NeuMF(**params).fit(small_synthetic, init=plain)
    with pytest.raises(ValueError, match="alpha"):
        NeuMF(**{**params, "alpha": 1.5}).fit(small_synthetic)


# -- the robustness hook ------------------------------------------------------------------

def test_dataset_row_gradients_is_the_sum_of_the_twin_gradients():
    from aprnb.kernels.neumf import dataset_row_gradients
    rng = np.random.default_rng(7)
    F, layers = 2, (4, 3, 2)
    P, Q = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    theta = rng.normal(size=R.layout(F, layers)[1])
    users, items = rng.integers(0, 3, 30), rng.integers(0, 5, 30)
    labels = rng.integers(0, 2, 30).astype(np.int8)
    GP, GQ = np.zeros_like(P), np.zeros_like(Q)
    dims, offs, aoff, _ = _structure(F, layers)
    total = dataset_row_gradients(P, Q, theta, users, items, labels, dims, offs, aoff, F, 2,
                                  GP, GQ)
    WP, WQ, want = np.zeros_like(P), np.zeros_like(Q), 0.0
    for u, i, t in zip(users, items, labels):
        gp, gq, _ = R.grads(P[u], Q[i], t, theta, F, layers)
        WP[u] += gp
        WQ[i] += gq
        want += R.loss(P[u], Q[i], t, theta, F, layers)
    np.testing.assert_allclose(GP, WP, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(GQ, WQ, rtol=1e-10, atol=1e-12)
    assert total == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("kind", ["adversarial", "random"])
def test_perturbed_model_moves_each_row_part_by_eps(kind, small_synthetic):
    import aprnb
    model = NeuMF(**FAST).fit(small_synthetic)
    P0, Q0 = model.user_factors_.copy(), model.item_factors_.copy()
    noisy = aprnb.perturb(model, small_synthetic, 0.5, kind=kind, random_state=3)
    assert type(noisy) is NeuMF and noisy is not model
    np.testing.assert_array_equal(model.user_factors_, P0)       # the model is untouched
    for D in (noisy.user_factors_ - P0, noisy.item_factors_ - Q0):
        for part in (slice(0, 4), slice(4, None)):
            norms = np.linalg.norm(D[:, part], axis=1)
            np.testing.assert_allclose(norms[norms > 1e-3], 0.5, rtol=1e-4)
    again = aprnb.perturb(model, small_synthetic, 0.5, kind=kind, random_state=3)
    np.testing.assert_array_equal(again.user_factors_, noisy.user_factors_)
    if kind == "adversarial":        # the adversary raises the training loss more than noise
        rand = aprnb.perturb(model, small_synthetic, 0.5, kind="random", random_state=3)
        u, i = small_synthetic.nonzero()
        ones = np.ones(len(u), np.int8)
        assert noisy.sample_losses(u, i, ones).sum() > rand.sample_losses(u, i, ones).sum()
    with pytest.raises(ValueError, match="pgd"):
        aprnb.perturb(model, small_synthetic, 0.5, kind="pgd")
