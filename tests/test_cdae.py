"""CDAE: gradients against central differences, the kernel against its NumPy twin, the model.

The twin is ``aprnb/reference/cdae.py``; the kernel ``aprnb/kernels/cdae.py``; the
derivation ``docs/derivations.md`` section 11. One step sees one user with the
corruption mask and the negatives passed in explicitly, so kernel and twin are
compared deterministically.
"""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import aprnb
from aprnb import CDAE, DivergenceError, evaluate
from aprnb import reference as ref
from aprnb.kernels._rng import DRAW, REDRAW, randint, seed_states, uniform
from aprnb.kernels.cdae import cdae_epoch_serial, cdae_step
from checks import assert_same, num_grad, snapshot

FEW = settings(max_examples=25, deadline=None)
GRAD_TOL = dict(rtol=1e-6, atol=1e-7)


@st.composite
def user_case(draw, max_items=9, max_hidden=5):
    """Tables, a user, its items, a corruption mask and disjoint distinct negatives."""
    n_items = draw(st.integers(2, max_items))
    n_users = draw(st.integers(1, 3))
    H = draw(st.integers(1, max_hidden))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 0.5, 1.5]))
    params = tuple(scale * rng.standard_normal(s) for s in
                   ((n_items, H), (n_users, H), (H,), (n_items, H), (n_items,)))
    perm = rng.permutation(n_items)
    n_pos = draw(st.integers(1, n_items - 1))
    n_neg = draw(st.integers(0, n_items - n_pos))
    items = np.sort(perm[:n_pos]).astype(np.int32)
    negs = perm[n_pos:n_pos + n_neg].astype(np.int32)
    kept = (rng.random(n_pos) < draw(st.sampled_from([0.0, 0.5, 1.0]))).astype(np.uint8)
    q = draw(st.sampled_from([0.0, 0.2, 0.5]))
    return dict(params=params, u=int(rng.integers(n_users)), items=items, kept=kept,
                negs=negs, c=1.0 / (1.0 - q), reg=draw(st.sampled_from([0.0, 0.1])),
                lr=draw(st.sampled_from([0.01, 0.1, 0.5])))


def _args(c):
    return c["u"], c["items"], c["kept"], c["negs"]


# -- (b) every gradient against float64 central differences -------------------------------------
@FEW
@given(user_case())
def test_gradients_match_central_differences(c):
    """dW, dV, db, dW', db' of the twin against central differences of the loss with its
    regulariser (docs/derivations.md section 11)."""
    def loss(p):
        return ref.cdae_loss(p, *_args(c), c["c"], c["reg"])
    analytic = ref.cdae_grads(c["params"], *_args(c), c["c"], c["reg"])
    numeric = num_grad(lambda *a: loss(list(a)), *c["params"])
    for name, a, n in zip(("W", "V", "b", "W'", "b'"), analytic, numeric):
        np.testing.assert_allclose(a, n, err_msg=name, **GRAD_TOL)


@FEW
@given(user_case())
def test_reference_step_is_descent_on_the_loss(c):
    """SGD: (old - new) / lr is the numerical gradient; Adagrad: G grows by g^2."""
    def loss(p):
        return ref.cdae_loss(p, *_args(c), c["c"], c["reg"])
    numeric = num_grad(lambda *a: loss(list(a)), *c["params"])
    new, acc, _ = ref.cdae_step_ref(c["params"], *_args(c), c["lr"], c["reg"], c["c"])
    assert acc is None
    for old, n, g in zip(c["params"], new, numeric):
        np.testing.assert_allclose((old - n) / c["lr"], g, **GRAD_TOL)
    acc0 = tuple(np.full_like(p, 0.1) for p in c["params"])
    new, acc, _ = ref.cdae_step_ref(c["params"], *_args(c), c["lr"], c["reg"], c["c"], acc0)
    for old, n, a, g in zip(c["params"], new, acc, numeric):
        np.testing.assert_allclose(a, 0.1 + g * g, **GRAD_TOL)
        np.testing.assert_allclose(old - n, c["lr"] * g / np.sqrt(a), **GRAD_TOL)


def test_hidden_layer_and_factors_by_hand():
    """Tiny case written out: z = sigmoid(V_u + b + c * W_kept), score = logit."""
    W = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    V = np.array([[0.5, -0.5]])
    b = np.array([0.1, 0.2])
    Wp = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 1.0]])
    bp = np.array([0.0, -1.0, 0.5])
    params = (W, V, b, Wp, bp)
    z = ref.cdae_hidden(params, 0, [0, 1], [1, 0], 2.0)
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-np.array([0.5 + 0.1 + 2.0, -0.5 + 0.2]))))
    P, Q = ref.cdae_factors_ref(params, sp.csr_matrix(np.array([[1, 1, 0]])))
    z = 1 / (1 + np.exp(-np.array([1.0 + 0.5 + 0.1, 2.0 - 0.5 + 0.2])))
    np.testing.assert_allclose(P, [[z[0], z[1], 1.0]])
    np.testing.assert_allclose(P @ Q.T, [[Wp @ z + bp]][0])


# -- (a) the kernel against the twin ------------------------------------------------------------
def _kernel_run(c, dt, adagrad):
    tables = [np.array(a, dtype=dt) for a in c["params"]]
    if adagrad:
        accs = [np.full_like(a, 0.1) for a in tables]
    else:
        accs = [np.empty((0,) + a.shape[1:], dt) for a in tables]
    loss = cdae_step(*tables, *accs, *_args(c), dt(c["lr"]), dt(c["reg"]), c["c"], adagrad)
    return tables, accs, loss


@FEW
@given(user_case(), st.booleans(), st.sampled_from([np.float64, np.float32]))
def test_step_kernel_matches_reference(c, adagrad, dt):
    """One kernel step equals the twin's step (float64: to rounding; float32: loosely)."""
    # the twin sees the same (rounded) inputs as the kernel
    c = dict(c, params=tuple(np.asarray(a, dt).astype(np.float64) for a in c["params"]),
             lr=float(dt(c["lr"])), reg=float(dt(c["reg"])))
    tables, accs, loss = _kernel_run(c, dt, adagrad)
    acc0 = tuple(np.full_like(p, 0.1) for p in c["params"]) if adagrad else None
    new, acc, eloss = ref.cdae_step_ref(c["params"], *_args(c), c["lr"], c["reg"], c["c"], acc0)
    tol = dict(rtol=1e-9, atol=1e-11) if dt == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(loss, eloss, **tol)
    for name, a, e in zip(("W", "V", "b", "W'", "b'"), tables, new):
        np.testing.assert_allclose(a, e, err_msg=name, **tol)
    if adagrad:
        for name, a, e in zip(("GW", "GV", "Gb", "GW'", "Gb'"), accs, acc):
            np.testing.assert_allclose(a, e, err_msg=name, **tol)
    else:
        assert all(a.size == 0 for a in accs)


# -- the epoch: bookkeeping of the draws ---------------------------------------------------------
@njit
def _epoch_draws(indptr, indices, users, n_items, q, negatives, states):
    """Replay the draws of one serial chunk of ``cdae_epoch_serial`` (shuffle, corruption,
    negatives), with an obvious rejection loop on a set instead of the mark array."""
    n = users.shape[0]
    for k in range(n - 1, 0, -1):             # the chunk's shuffle (stream DRAW)
        r = randint(states, DRAW, k + 1)
        users[k], users[r] = users[r], users[k]
    kept = np.zeros(indices.shape[0] + 1, np.uint8)
    negs = -np.ones((n, n_items), np.int64)
    for k in range(n):
        u = users[k]
        a, e = indptr[u], indptr[u + 1]
        deg = e - a
        if deg == 0 or deg >= n_items:
            continue
        taken = set()
        for m in range(a, e):
            kept[m] = 1 if uniform(states, REDRAW) >= q else 0
            taken.add(indices[m])
        for m in range(min(negatives * deg, n_items - deg)):
            j = randint(states, DRAW, n_items)
            while j in taken:
                j = randint(states, DRAW, n_items)
            taken.add(j)
            negs[u, m] = j
    return kept, negs


@st.composite
def epoch_case(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dense = rng.random((n_users, n_items)) < draw(st.sampled_from([0.2, 0.5, 0.9]))
    if draw(st.booleans()):
        dense[0] = True                        # a user with every item: skipped
    X = sp.csr_matrix(dense.astype(np.float64))
    H = draw(st.integers(1, 4))
    params = tuple(0.5 * rng.standard_normal(s) for s in
                   ((n_items, H), (n_users, H), (H,), (n_items, H), (n_items,)))
    return dict(X=X, params=params, q=draw(st.sampled_from([0.0, 0.3])),
                negatives=draw(st.integers(1, 3)), seed=int(rng.integers(2**31)),
                lr=0.1, reg=draw(st.sampled_from([0.0, 0.05])))


@FEW
@given(epoch_case(), st.booleans())
def test_epoch_serial_equals_loop_over_reference_steps(c, adagrad):
    """One serial epoch (one chunk) equals the twin's steps over the users in the shuffled
    order, with the corruption and negatives replayed from the same RNG streams."""
    X, dt = c["X"], np.float64
    states = seed_states(np.random.default_rng(c["seed"]), 1)
    users = np.arange(X.shape[0], dtype=X.indices.dtype)
    order = users.copy()
    kept, negs = _epoch_draws(X.indptr, X.indices, order, X.shape[1], c["q"], c["negatives"],
                              states.copy())
    tables = [np.array(a, dtype=dt) for a in c["params"]]
    accs = ([np.full_like(a, 0.1) for a in tables] if adagrad else
            [np.empty((0,) + a.shape[1:], dt) for a in tables])
    loss, count = cdae_epoch_serial(*tables, *accs, X.indptr, X.indices, users, states, c["lr"],
                                    c["reg"], c["q"], c["negatives"], adagrad, 1, True)
    np.testing.assert_array_equal(users, order)
    params = c["params"]
    acc = tuple(np.full_like(p, 0.1) for p in params) if adagrad else None
    eloss, ecount = 0.0, 0
    for u in order:
        items = X.indices[X.indptr[u]:X.indptr[u + 1]]
        if len(items) in (0, X.shape[1]):
            continue
        ng = negs[u][negs[u] >= 0]
        params, acc, step_loss = ref.cdae_step_ref(params, u, items,
                                                   kept[X.indptr[u]:X.indptr[u + 1]], ng,
                                                   c["lr"], c["reg"], 1.0 / (1.0 - c["q"]), acc)
        eloss += step_loss
        ecount += len(items) + len(ng)
    assert count == ecount
    np.testing.assert_allclose(loss, eloss, rtol=1e-9)
    for a, e in zip(tables, params):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-11)
    if adagrad:
        for a, e in zip(accs, acc):
            np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-11)


# -- the model ------------------------------------------------------------------------------------
SMALL = dict(hidden=8, epochs=3, n_threads=1, random_state=0, show_progress=False)


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_factors_are_the_uncorrupted_forward_pass(optimizer, small_synthetic):
    """user_factors_ = [z_u, 1], item_factors_ = [W'_i, b'_i] (the twin), and the scores
    rank as the network's outputs do."""
    m = CDAE(**SMALL, optimizer=optimizer, dtype=np.float64).fit(small_synthetic)
    params = tuple(getattr(m, n + "_") for n in
                   ("weights_in", "user_nodes", "bias_hidden", "weights_out", "bias_out"))
    P, Q = ref.cdae_factors_ref(params, small_synthetic)
    np.testing.assert_allclose(m.user_factors_, P, rtol=1e-12)
    np.testing.assert_array_equal(m.item_factors_, Q)
    out = 1 / (1 + np.exp(-(P @ Q.T)))
    order = np.argsort(-m.score(np.arange(5)), axis=1, kind="stable")
    np.testing.assert_array_equal(np.take_along_axis(out[:5], order, 1),
                                  np.sort(out[:5], axis=1)[:, ::-1])


def test_seeded_fit_is_bitwise_reproducible(small_synthetic):
    a = CDAE(**SMALL).fit(small_synthetic)
    b = CDAE(**SMALL).fit(small_synthetic)
    for name in CDAE._extra_members + ("user_factors", "item_factors"):
        assert_same(getattr(a, name + "_"), getattr(b, name + "_"), name)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    c = CDAE(**dict(SMALL, random_state=1)).fit(small_synthetic)
    assert not np.array_equal(a.weights_out_, c.weights_out_)


def test_loaded_model_continues_like_the_original(small_synthetic, tmp_path):
    """Every trainable table and accumulator is in the file: continuing from the loaded
    model is bitwise the same as continuing from the fitted one."""
    m = CDAE(**SMALL).fit(small_synthetic)
    m.save(tmp_path / "m.npz")
    loaded = aprnb.load(tmp_path / "m.npz")
    for name in CDAE._extra_members:
        assert_same(getattr(loaded, name + "_"), getattr(m, name + "_"), name)
    a = CDAE(**dict(SMALL, random_state=3)).fit(small_synthetic, init=m)
    b = CDAE(**dict(SMALL, random_state=3)).fit(small_synthetic, init=loaded)
    assert_same(b.user_factors_, a.user_factors_, "user_factors_")
    assert_same(b.acc_weights_in_, a.acc_weights_in_, "acc_weights_in_")
    assert not np.array_equal(a.weights_in_, m.weights_in_)


def test_loaded_file_with_inconsistent_tables_is_refused(small_synthetic, tmp_path):
    path = tmp_path / "m.npz"
    CDAE(**SMALL).fit(small_synthetic).save(path)
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    data["x:weights_out"] = data["x:weights_out"][:, :-1]
    np.savez(path, **data)
    with pytest.raises(ValueError, match="weights_out"):
        aprnb.load(path)


@pytest.mark.parametrize("kw,exc,fragment", [
    (dict(corruption=1.0), ValueError, "corruption"),
    (dict(corruption=-0.1), ValueError, "corruption"),
    (dict(negatives=0), ValueError, "negatives"),
    (dict(negatives=1.5), TypeError, "negatives"),
    (dict(hidden=0), ValueError, "hidden"),
    (dict(optimizer="adam"), ValueError, "optimizer"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(init_std=0.0), ValueError, "init_std"),
    (dict(show_progress=1), TypeError, "show_progress"),
])
def test_bad_parameters_are_refused_and_the_model_kept(kw, exc, fragment, small_synthetic):
    m = CDAE(**SMALL).fit(small_synthetic)
    snap = snapshot(m)
    m.set_params(**kw)
    with pytest.raises(exc, match=fragment):
        m.fit(small_synthetic)
    for name in CDAE._extra_members + ("user_factors", "item_factors", "history"):
        assert_same(getattr(m, name + "_"), snap[name + "_"], name)


def test_bad_init_is_refused(small_synthetic):
    m = CDAE(**SMALL)
    with pytest.raises(TypeError, match="fitted .*CDAE"):
        m.fit(small_synthetic, init=(np.ones((3, 2)), np.ones((3, 2))))
    other = CDAE(**dict(SMALL, hidden=4)).fit(small_synthetic)
    with pytest.raises(ValueError, match="hidden=8"):
        m.fit(small_synthetic, init=other)
    assert not hasattr(m, "user_factors_") or m.user_factors_ is None


def test_divergence_rolls_back_to_the_last_good_epoch(small_synthetic):
    m = CDAE(**dict(SMALL, optimizer="sgd", learning_rate=1e30, reg=0.1,
                    epochs=5))
    with pytest.raises(DivergenceError, match="keeps epoch"):
        m.fit(small_synthetic)
    assert all(np.all(np.isfinite(getattr(m, n + "_"))) for n in CDAE._extra_members)
    assert np.all(np.isfinite(m.user_factors_))


@pytest.mark.realdata
def test_lastfm_beats_itempop(lastfm):
    """A short fit on Last.fm (given split) beats ItemPop by a wide margin."""
    train, test = lastfm.train, lastfm.test
    m = CDAE(epochs=10, n_threads=1, random_state=0, show_progress=False).fit(train)
    res = evaluate(m, train, test, k=[20])
    pop = evaluate(aprnb.ItemPop().fit(train), train, test, k=[20])
    assert res["recall@20"] > 1.3 * pop["recall@20"], (res, pop)
