"""perturb() and robustness(): norms, untouched models, adversarial vs random, PGD.

Bad arguments raise ``ValueError``/``TypeError`` naming the argument and leave the
model and the matrices exactly as they were.
"""
import inspect

import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb import APR, BPR
from aprnb.data import leave_one_out, make_synthetic
from aprnb.kernels._rng import seed_states
from aprnb.kernels.sampling import sample_negatives
from aprnb.perturbation import bpr_loss_total
from checks import INF, NAN, assert_same, assert_unchanged, fit_fast, message, snapshot


@pytest.fixture(scope="module")
def fitted():
    X = make_synthetic(n_users=300, n_items=200, n_groups=5, mean_degree=15, random_state=3)
    train, test = leave_one_out(X, random_state=3)
    model = aprnb.BPR(factors=16, epochs=30, optimizer="adagrad", n_threads=1, random_state=3,
                      show_progress=False).fit(train)
    return model, train, test


def _naive_adversarial(P, Q, train, eps, seed):
    """Slow reference: same seeded negatives, np.add.at sums, per-row normalisation."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr)).astype(np.int64)
    items = train.indices.astype(np.int64)
    negs = sample_negatives(train.indptr.astype(np.int64), train.indices.astype(np.int64),
                            users, train.shape[1], seed_states(rng, 1))
    P64, Q64 = P.astype(np.float64), Q.astype(np.float64)
    x = np.einsum("kd,kd->k", P64[users], Q64[items] - Q64[negs])
    s = 1.0 / (1.0 + np.exp(x))                      # sigma(-x)
    GP = np.zeros_like(P64)
    GQ = np.zeros_like(Q64)
    np.add.at(GP, users, -s[:, None] * (Q64[items] - Q64[negs]))
    np.add.at(GQ, items, -s[:, None] * P64[users])
    np.add.at(GQ, negs, s[:, None] * P64[users])

    def norm(G):
        n = np.linalg.norm(G, axis=1, keepdims=True)
        return np.where(n > 0, eps * G / np.where(n > 0, n, 1.0), 0.0)
    return P64 + norm(GP), Q64 + norm(GQ)


@pytest.mark.parametrize("kind", ["adversarial", "random"])
@pytest.mark.parametrize("eps", [0.1, 0.5, 2.0])
def test_rows_have_norm_eps_and_model_untouched(fitted, kind, eps):
    model, train, _ = fitted
    P0, Q0 = model.user_factors_.copy(), model.item_factors_.copy()
    Pp, Qp = aprnb.perturb(model, train, eps, kind=kind, random_state=0)
    assert np.array_equal(model.user_factors_, P0) and np.array_equal(model.item_factors_, Q0)
    assert Pp.dtype == P0.dtype and Pp.shape == P0.shape and Qp.shape == Q0.shape
    for D in (Pp.astype(np.float64) - P0, Qp.astype(np.float64) - Q0):
        n = np.linalg.norm(D, axis=1)
        moved = n > 0
        assert moved.mean() > 0.9
        np.testing.assert_allclose(n[moved], eps, rtol=1e-4)


def test_adversarial_matches_naive_reference(fitted):
    model, train, _ = fitted
    Pp, Qp = aprnb.perturb(model, train, 0.7, kind="adversarial", random_state=11)
    Pr, Qr = _naive_adversarial(model.user_factors_, model.item_factors_, train, 0.7, 11)
    np.testing.assert_allclose(Pp, Pr, atol=1e-5)
    np.testing.assert_allclose(Qp, Qr, atol=1e-5)


def test_rows_without_gradient_get_zero():
    X = np.zeros((4, 6))
    X[0, [0, 1]] = 1
    X[1, [2]] = 1                     # users 2, 3 and several items never appear
    P = np.random.default_rng(0).normal(size=(4, 3))
    Q = np.random.default_rng(1).normal(size=(6, 3))
    Pp, Qp = aprnb.perturb((P, Q), X, 1.0, kind="adversarial", random_state=0)
    assert np.array_equal(Pp[2:], P[2:])
    assert np.all(np.isfinite(Pp)) and np.all(np.isfinite(Qp))


def test_adversarial_raises_loss_far_more_than_random(fitted):
    model, train, _ = fitted
    base = bpr_loss_total(model, train, random_state=5)
    for eps in (0.1, 0.5):
        adv = bpr_loss_total(aprnb.perturb(model, train, eps, "adversarial", random_state=5),
                             train, random_state=5) - base
        rnd = np.mean([bpr_loss_total(aprnb.perturb(model, train, eps, "random",
                                                    random_state=s), train,
                                      random_state=5) - base for s in range(3)])
        assert adv > 0
        assert adv >= 3 * max(rnd, 0.0) and adv >= 3 * abs(rnd)


def test_pgd_stays_in_ball_and_is_at_least_as_strong(fitted):
    model, train, _ = fitted
    eps = 0.5
    Pp, Qp = aprnb.perturb(model, train, eps, kind="pgd", random_state=5, steps=5)
    for D in (Pp - model.user_factors_, Qp - model.item_factors_):
        assert np.linalg.norm(D, axis=1).max() <= eps * (1 + 1e-5)
    one = bpr_loss_total(aprnb.perturb(model, train, eps, "adversarial", random_state=5),
                         train, random_state=5)
    multi = bpr_loss_total((Pp, Qp), train, random_state=5)
    assert multi >= 0.99 * one


def test_robustness_report(fitted):
    model, train, test = fitted
    rep = aprnb.robustness(model, train, test, eps=(0.5, 1.0), kinds=("adversarial", "random"),
                           k=50, random_state=0)
    assert [r["kind"] for r in rep] == ["clean", "adversarial", "adversarial", "random",
                                        "random"]
    clean = aprnb.evaluate(model, train, test, k=50, protocol="loo")
    assert rep[0]["ndcg@50"] == pytest.approx(clean["ndcg@50"])
    Pp, Qp = aprnb.perturb(model, train, 1.0, "adversarial", random_state=0)
    pert = aprnb.evaluate((Pp, Qp), train, test, k=50, protocol="loo")
    assert rep[2]["ndcg@50"] == pytest.approx(pert["ndcg@50"])
    assert rep[2]["ndcg@50 change"] == pytest.approx(pert["ndcg@50"] / clean["ndcg@50"] - 1)
    text = str(rep)
    assert "adversarial" in text and "ndcg@50" in text


# -- bad arguments, untouched models, reproducibility -----------------------------------
PERTURB_BAD = [
    (dict(eps=0), ValueError, "eps must be > 0"),
    (dict(eps=-1), ValueError, "eps must be > 0"),
    (dict(eps=NAN), ValueError, "eps must be finite"),
    (dict(eps=INF), ValueError, "eps must be finite"),
    (dict(eps="1"), TypeError, "eps must be a real number"),
    (dict(eps=[1.0]), TypeError, "eps must be a real number"),
    (dict(eps=True), TypeError, "eps must be a real number"),
    (dict(kind="fgsm"), ValueError, "kind must be one of"),
    (dict(kind=None), ValueError, "kind must be one of"),
    (dict(random_state=-5), ValueError, "random_state"),
    (dict(random_state=1.5), TypeError, "random_state"),
    (dict(kind="pgd", steps=0), ValueError, "steps"),
    (dict(kind="pgd", steps=True), TypeError, "steps"),
    (dict(kind="pgd", step_size=0), ValueError, "step_size"),
    (dict(kind="pgd", step_size=NAN), ValueError, "step_size"),
]


@pytest.mark.parametrize("kw,exc,fragment", PERTURB_BAD, ids=[repr(c[0]) for c in PERTURB_BAD])
def test_perturb_bad_arguments(kw, exc, fragment, split):
    model = fit_fast(APR, split[0])
    snaps = snapshot(model), snapshot(split[0])
    args = dict(eps=0.5)
    args.update(kw)
    with pytest.raises(exc, match=fragment):
        aprnb.perturb(model, split[0], args.pop("eps"), **args)
    assert_unchanged(model, snaps[0])
    assert_unchanged(split[0], snaps[1])


def test_perturb_bad_model_and_train(split):
    train = split[0]
    model = fit_fast(BPR, train)
    snap = snapshot(model)
    cases = [
        ((BPR(), train), ValueError, "not fitted"),
        ((None, train), TypeError, "fitted aprnb model"),
        ((model, train[:5]), ValueError, "train: shape"),
        ((model, -train), ValueError, "negative"),
        ((model, None), TypeError, "train"),
        ((model, sp.csr_matrix(train.shape)), ValueError, "no interactions"),
    ]
    for (m, tr), exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            aprnb.perturb(m, tr, 0.5)
        assert_unchanged(model, snap)


@pytest.mark.parametrize("kind", ["adversarial", "random", "pgd"])
def test_perturb_never_modifies_the_model(kind, split):
    model = fit_fast(APR, split[0])
    snap = snapshot(model)
    P, Q = aprnb.perturb(model, split[0], 0.5, kind=kind, random_state=0, steps=2)
    assert_unchanged(model, snap)
    assert P.dtype == model.user_factors_.dtype and np.all(np.isfinite(P))
    assert not np.array_equal(P, model.user_factors_)


@pytest.mark.parametrize("kind", ["adversarial", "random", "pgd"])
def test_perturb_with_a_seed_is_bitwise_reproducible(kind, X):
    model = fit_fast(BPR, X)
    a = aprnb.perturb(model, X, 0.5, kind=kind, random_state=3, steps=2)
    b = aprnb.perturb(model, X, 0.5, kind=kind, random_state=3, steps=2)
    for x, y in zip(a, b):
        assert_same(x, y, kind)
    c = aprnb.perturb(model, X, 0.5, kind=kind, random_state=4, steps=2)
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


ROBUSTNESS_BAD = [
    (dict(eps=[0]), ValueError, "eps must be > 0"),
    (dict(eps=-1), ValueError, "eps must be > 0"),
    (dict(eps="1"), TypeError, "eps"),
    (dict(eps=NAN), ValueError, "eps must be finite"),
    (dict(eps=[[0.5]]), TypeError, "eps"),
    (dict(kinds=["x"]), ValueError, "kinds must be one of"),
    (dict(protocol="bad"), ValueError, "protocol must be one of"),
    (dict(k=0), ValueError, "k must be"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(kinds=["pgd"], steps=0), ValueError, "steps"),
]


@pytest.mark.parametrize("kw,exc,fragment", ROBUSTNESS_BAD,
                         ids=[repr(c[0]) for c in ROBUSTNESS_BAD])
def test_robustness_bad_arguments(kw, exc, fragment, split):
    model = fit_fast(BPR, split[0])
    snap = snapshot(model)
    with pytest.raises(exc, match=fragment):
        args = dict(eps=0.5, k=5)
        args.update(kw)
        aprnb.robustness(model, split[0], split[1], **args)
    assert_unchanged(model, snap)


def test_robustness_shape_mismatch_and_unfitted(split):
    train, test = split
    model = fit_fast(BPR, train)
    with pytest.raises(ValueError, match="test: shape"):
        aprnb.robustness(model, train, test[:5], eps=0.5, k=5)
    with pytest.raises(ValueError, match="train: shape"):
        aprnb.robustness(model, train[:, :5], test, eps=0.5, k=5)
    with pytest.raises(ValueError, match="not fitted"):
        aprnb.robustness(BPR(), train, test, eps=0.5, k=5)


@pytest.mark.parametrize("kw", [dict(eps=[]), dict(kinds=[])], ids=["eps=[]", "kinds=[]"])
def test_robustness_rejects_empty_grids(kw, split):
    """An empty eps or kinds list silently yields a report with only the clean row."""
    model = fit_fast(BPR, split[0])
    name = next(iter(kw))
    args = dict(eps=0.5, k=5)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        aprnb.robustness(model, split[0], split[1], **args)


@pytest.mark.parametrize("kinds", [None, 5], ids=["None", "int"])
def test_robustness_bad_kinds_type_names_the_argument(kinds, split):
    model = fit_fast(BPR, split[0])
    with pytest.raises(TypeError, match="kinds"):
        aprnb.robustness(model, split[0], split[1], eps=0.5, kinds=kinds, k=5)


def test_robustness_sampled_protocol_error_is_actionable(split):
    """robustness() has no ``negatives`` argument, so its error must not ask for one."""
    model = fit_fast(BPR, split[0])
    with pytest.raises(ValueError, match="protocol") as ei:
        aprnb.robustness(model, split[0], split[1], eps=0.5, protocol="sampled", k=5)
    accepts_negatives = "negatives" in inspect.signature(aprnb.robustness).parameters
    assert accepts_negatives or "negatives=" not in message(ei)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_attack_rows_use_the_official_guard(dt):
    """Delta = eps * g / sqrt(max(|g|^2, 1e-12)): full length where |g| >= 1e-6,
    proportionally shorter below (AMF.py's l2_normalize), zero for a zero row."""
    from aprnb.kernels.attack import normalize_rows
    G = np.zeros((3, 4), dtype=dt)
    G[0] = [3.0, 4.0, 0.0, 0.0]            # |g| = 5
    G[1] = [1e-7, 0.0, 0.0, 0.0]           # |g| = 1e-7: a tenth of the guard
    out = np.empty_like(G)
    normalize_rows(G, 2.0, out)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [2.0, 0.2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out[0], [1.2, 1.6, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("cls, fragment", [(aprnb.CDAE, "constant column"),
                                           (aprnb.IRGAN, "item biases")])
def test_models_without_an_embedding_adversary_are_refused(cls, fragment, split):
    """CDAE's and IRGAN's ranking tables carry a constant column: no silent attack on it."""
    train, test = split
    model = cls(epochs=1, n_threads=1, random_state=0, show_progress=False,
                **({"bpr_epochs": 1} if cls is aprnb.IRGAN else {})).fit(train)
    for call in (lambda: aprnb.perturb(model, train, 0.5),
                 lambda: aprnb.robustness(model, train, test, eps=(0.5,))):
        with pytest.raises(ValueError, match=fragment):
            call()
