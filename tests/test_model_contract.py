"""The model contract: every model passes the same suite.

After implicit's ``tests/recommender_base_test.py``. A new model joins by adding one
line to :data:`MODELS`. The contract:

* ``planted``: learns the planted structure of ``make_synthetic`` (beats random
  factors by a wide margin; trained models also beat ItemPop);
* ``batch``: recommend and score for many users equal one user at a time;
* ``round_trip``: save and ``aprnb.load`` give back the same model, bitwise;
* ``dtype``: float32 and float64; ``fit`` returns ``self``; learned attributes end
  in ``_`` and only ``fit`` sets them;
* ``not_fitted``: ``NotFittedError`` before ``fit``;
* ``bad_input``: bad matrices and arguments raise ``ValueError``/``TypeError`` and
  leave the model exactly as it was;
* ``params``: ``get_params``/``set_params``/``repr``;
* ``exclude``: recommend never returns a training item;
* ``seed``, ``threads``, ``init``, ``callback``: seeded fits are bitwise
  reproducible, several threads train, warm starts never modify ``init``, the
  callback sees every epoch and can stop training.

A point that does not apply to a model is listed in its ``na`` with the reason; the
test then reports it as skipped with that reason (``-ra``), never silently.
"""
import inspect
from typing import NamedTuple

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import aprnb
from aprnb import APR, BPR, CDAE, IRGAN, VAT, ItemPop, NeuMF, NotFittedError, evaluate
from aprnb.reference import pairs
from checks import (FAST, assert_same, assert_unchanged, interactions, learned_attributes,
                    listing, message, snapshot)

SMALL = dict(factors=8, epochs=4, n_threads=1, random_state=0, show_progress=False)


class Entry(NamedTuple):
    cls: type
    params: dict         # constructor arguments of this configuration
    learn: dict = {}     # settings to learn the planted structure
    na: dict = {}        # contract point -> why it does not apply


#: ItemPop counts interactions: no training loop, no factors of its own to warm-start.
ITEMPOP_NA = {
    "trains": "ItemPop has no epochs, optimizer or history of losses",
    "seed": "ItemPop has no random_state: its fit is deterministic (checked without a seed)",
    "threads": "ItemPop has no n_threads parameter",
    "init": "ItemPop has no factors to warm-start (fit refuses init)",
    "callback": "ItemPop fits in one step: its callbacks run once, as after epoch 1 "
                "(test_callbacks.py::test_itempop_runs_its_callbacks_once_and_refuses_init)",
    "beats_itempop": "ItemPop is the baseline itself",
}
#: CDAE's width is ``hidden`` (its factors are [z_u, 1] and [W'_i, b'_i]: hidden + 1).
_CDAE_SMALL = dict(hidden=8, epochs=4, n_threads=1, random_state=0, show_progress=False)
#: The Last.fm defaults' reg=0.01 (per touch) over-shrinks the 300 items of make_synthetic.
_CDAE_LEARN = dict(hidden=16, epochs=30, reg=0.0)
_CDAE_NA = {"init_tuple": "CDAE continues from its five tables (W, V, b, W', b'), which a "
                          "(user_factors, item_factors) pair does not hold: init= takes a "
                          "fitted or loaded CDAE"}
_APR_LEARN = dict(factors=16, bpr_epochs=20, epochs=10)   # from a converged BPR, as the paper
#: NeuMF's rows are [GMF | MLP]: factors=4 and layers[0]=8 make them 8 wide, as the tuples
#: of the warm-start test
_NEUMF = dict(SMALL, factors=4, layers=(8, 4), batch_size=32)
_NEUMF_LEARN = dict(factors=16, layers=(32, 16, 8), epochs=20)

#: One line per model configuration.
MODELS = {
    "bpr-sgd": Entry(BPR, dict(SMALL, optimizer="sgd"), dict(factors=16, epochs=30)),
    "bpr-adagrad": Entry(BPR, dict(SMALL, optimizer="adagrad"), dict(factors=16, epochs=30)),
    "apr-sgd": Entry(APR, dict(SMALL, optimizer="sgd"), _APR_LEARN),
    "apr-adagrad": Entry(APR, dict(SMALL, optimizer="adagrad"), _APR_LEARN),
    "apr-batch8": Entry(APR, dict(SMALL, optimizer="sgd", batch_size=8), _APR_LEARN),
    "apr-random": Entry(APR, dict(SMALL, optimizer="sgd", noise="random"), _APR_LEARN),
    "vat-adagrad": Entry(VAT, dict(SMALL, optimizer="adagrad"), _APR_LEARN),
    "vat-sgd": Entry(VAT, dict(SMALL, optimizer="sgd"), _APR_LEARN),
    "itempop": Entry(ItemPop, {}, {}, ITEMPOP_NA),
    "cdae-adagrad": Entry(CDAE, _CDAE_SMALL, dict(_CDAE_LEARN, learning_rate=0.1), _CDAE_NA),
    "cdae-sgd": Entry(CDAE, dict(_CDAE_SMALL, optimizer="sgd", learning_rate=0.5), _CDAE_LEARN,
                      _CDAE_NA),
    "irgan-adagrad": Entry(IRGAN, dict(SMALL, bpr_epochs=0), dict(factors=16, bpr_epochs=30)),
    "irgan-sgd": Entry(IRGAN, dict(SMALL, bpr_epochs=0, optimizer="sgd"),
                       dict(factors=16, bpr_epochs=30)),
    "neumf-adagrad": Entry(NeuMF, _NEUMF, _NEUMF_LEARN),
    "neumf-sgd": Entry(NeuMF, dict(_NEUMF, optimizer="sgd"), _NEUMF_LEARN),
    "neumf-adv": Entry(NeuMF, dict(_NEUMF, adversarial=True),
                       dict(_NEUMF_LEARN, clean_epochs=10, adversarial=True)),
}


def make(name, **kwargs):
    """An unfitted model of configuration ``name`` (``kwargs`` override its parameters)."""
    entry = MODELS[name]
    return entry.cls(**{**entry.params, **kwargs})


def fast(name, **kwargs):
    """Like :func:`make`, with the FAST settings of tests/checks.py for trained models
    (those of its parameters the model has)."""
    names = inspect.signature(MODELS[name].cls.__init__).parameters
    fast = {k: v for k, v in FAST.items() if k in names}
    return make(name, **({} if "trains" in MODELS[name].na else fast), **kwargs)


def applies(name, point):
    return point not in MODELS[name].na


def models_for(point):
    """The models of :data:`MODELS` to which ``point`` applies. The others are left out
    (not skipped): each says why in its ``na`` table, and
    :func:`test_every_exemption_names_a_contract_point` checks those tables."""
    return [pytest.param(name, id=name) for name in MODELS if applies(name, point)]


def n_epochs(model):
    return model.epochs + getattr(model, "bpr_epochs", 0) + getattr(model, "clean_epochs", 0)


@pytest.fixture(params=[p for p in models_for("bad_input")])
def fitted(request, split):
    """A freshly fitted model of each configuration, on the 30 x 20 ``split`` fixture."""
    return fast(request.param).fit(split[0])


# -- planted structure ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("planted"))
def test_learns_planted_structure(name, synthetic_loo):
    """Beats random factors by a wide margin on a leave-one-out split of make_synthetic;
    trained models also beat ItemPop.

    APR starts from a converged BPR (``bpr_epochs``), as the paper does: from a
    0.01-std initialisation the eps=0.5 adversary is far larger than the embeddings.
    """
    train, test = synthetic_loo
    rng = np.random.default_rng(0)
    random = evaluate((rng.standard_normal((train.shape[0], 8)),
                       rng.standard_normal((train.shape[1], 8))), train, test, k=[10],
                      protocol="loo")
    res = evaluate(make(name, **MODELS[name].learn).fit(train), train, test, k=[10],
                   protocol="loo")
    assert res["hr@10"] > 3 * random["hr@10"], (res, random)
    assert res["ndcg@10"] > 3 * random["ndcg@10"], (res, random)
    assert res["auc"] > random["auc"] + 0.1, (res, random)
    if applies(name, "beats_itempop"):
        pop = evaluate(ItemPop().fit(train), train, test, k=[10], protocol="loo")
        assert res["hr@10"] > 1.5 * pop["hr@10"], (res, pop)
        assert res["ndcg@10"] > 1.5 * pop["ndcg@10"], (res, pop)
        assert res["auc"] > pop["auc"]


# -- batch == one user at a time ------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("batch"))
def test_batch_equals_single_user(name, small_synthetic):
    model = make(name).fit(small_synthetic)
    users = np.arange(small_synthetic.shape[0])
    items, scores = model.recommend(users, k=10)
    all_scores = model.score(users)
    assert all_scores.shape == small_synthetic.shape
    # scores come from (blocked) matrix products: equal up to float rounding
    tol = dict(rtol=1e-5, atol=1e-6 * float(np.abs(all_scores).max()))
    for u in users[:12]:
        one, one_scores = model.recommend(int(u), k=10)
        np.testing.assert_array_equal(one[0], items[u])
        np.testing.assert_allclose(one_scores[0], scores[u], **tol)
        np.testing.assert_allclose(model.score(int(u))[0], all_scores[u], **tol)
        np.testing.assert_allclose(model.score([int(u)], items=[3, 1])[0],
                                   all_scores[u, [3, 1]], **tol)


# -- persistence ----------------------------------------------------------------------------------
def assert_same_model(a, b):
    """Same class, parameters, factors (bitwise, same dtype), history and optimizer state."""
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    assert_same(b.user_factors_, a.user_factors_, "user_factors_")
    assert_same(b.item_factors_, a.item_factors_, "item_factors_")
    assert_same(b.history_, a.history_, "history_")
    sa, sb = getattr(a, "optimizer_state_", None), getattr(b, "optimizer_state_", None)
    assert (sa is None) == (sb is None)
    if sa is not None:
        assert_same(tuple(sb), tuple(sa), "optimizer_state_")
    for name in type(a)._extra_members:            # a class's own arrays
        assert_same(getattr(b, name + "_"), getattr(a, name + "_"), name + "_")


@pytest.mark.parametrize("name", models_for("round_trip"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(name, dtype, small_synthetic, tmp_path):
    train = small_synthetic
    model = make(name, dtype=dtype).fit(train)
    path = tmp_path / "model.npz"
    assert model.save(path) == path
    loaded = aprnb.load(path)
    assert_same_model(model, loaded)
    if getattr(model, "optimizer", None) == "adagrad" and hasattr(model, "optimizer_state_"):
        assert loaded.optimizer_state_ is not None
    users = np.arange(train.shape[0])
    for a, b in zip(model.recommend(users, 5), loaded.recommend(users, 5)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    if applies(name, "init"):                  # the loaded model can continue training
        more = make(name, dtype=dtype, epochs=1).fit(train, init=loaded)
        assert np.all(np.isfinite(more.user_factors_))


# -- dtypes, fit returns self, learned attributes -------------------------------------------------
@pytest.mark.parametrize("name", models_for("dtype"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_fit_returns_self_and_learned_attributes(name, dtype, small_synthetic):
    model = make(name, dtype=dtype)
    assert vars(model) == model.get_params()          # __init__ only stores parameters
    assert learned_attributes(model) == []
    assert model.fit(small_synthetic) is model
    assert model.user_factors_.dtype == dtype and model.item_factors_.dtype == dtype
    width = type(model)._width(model.get_params()) or 1    # ItemPop: one column
    assert model.user_factors_.shape == (small_synthetic.shape[0], width)
    assert model.item_factors_.shape == (small_synthetic.shape[1], width)
    assert model.user_factors_.flags.c_contiguous and model.item_factors_.flags.c_contiguous
    assert model.score([0, 1]).dtype == dtype
    params = model.get_params()
    assert all(k.endswith("_") for k in vars(model) if k not in params), sorted(vars(model))
    assert {"user_factors_", "item_factors_", "history_", "train_",
            "provenance_"} <= set(learned_attributes(model))
    if not applies(name, "trains"):
        assert model.history_ == []
        return
    assert len(model.history_) == n_epochs(model)
    for e, h in enumerate(model.history_, 1):
        assert h["epoch"] == e
        assert np.isfinite(h["loss"]) and h["loss"] > 0
        assert h["seconds"] >= 0
    if not hasattr(model, "optimizer_state_"):     # its state is in _extra_members
        return
    if model.optimizer == "adagrad":
        GP, GQ = model.optimizer_state_
        assert GP.shape == model.user_factors_.shape and GQ.shape == model.item_factors_.shape
        assert GP.dtype == dtype and np.all(GP >= model.initial_accumulator)
    else:
        assert model.optimizer_state_ is None


# -- not fitted -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("not_fitted"))
def test_not_fitted(name, tmp_path):
    model = make(name)
    with pytest.raises(NotFittedError, match="not fitted yet.*fit"):
        model.recommend(0)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.recommend([0], k=3)
    with pytest.raises(ValueError, match="not fitted yet"):
        model.score(0)
    with pytest.raises(NotFittedError):
        model.n_users_
    with pytest.raises(ValueError, match="not fitted"):
        model.save(tmp_path / "m.npz")
    assert listing(tmp_path) == []
    assert learned_attributes(model) == []


# -- bad input ------------------------------------------------------------------------------------
_HINT = "scipy.sparse matrix"
BAD_TRAIN = [
    ("list of tuples", lambda: [(0, 1), (1, 2)], TypeError, _HINT),
    ("list of lists", lambda: [[1, 0], [0, 1]], TypeError, _HINT),
    ("None", lambda: None, TypeError, _HINT),
    ("path string", lambda: "train.csv", TypeError, _HINT),
    ("dict", lambda: {(0, 1): 1}, TypeError, _HINT),
    ("3-D array", lambda: np.ones((2, 2, 2)), ValueError, "2-D"),
    ("1-D array", lambda: np.ones(3), ValueError, "2-D"),
    ("0-D array", lambda: np.float64(1.0), ValueError, "2-D"),
    ("object array", lambda: np.array([[1, 0], [0, 1]], dtype=object), TypeError, "object"),
    ("string array", lambda: np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
    ("datetime array", lambda: np.full((2, 2), np.datetime64("2020-01-01")), TypeError,
     "numeric"),
    ("complex sparse", lambda: sp.csr_matrix(np.array([[1, 0], [0, 1j]])), TypeError,
     "complex"),
    ("NaN dense", lambda: np.array([[np.nan, 1.0], [1.0, 0.0]]), ValueError, "NaN"),
    ("inf dense", lambda: np.array([[np.inf, 1.0], [1.0, 0.0]]), ValueError, "infinite"),
    ("NaN stored in sparse", lambda: sp.csr_matrix(
        (np.array([np.nan, 1.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2)),
     ValueError, "NaN"),
    ("negative dense", lambda: np.array([[1.0, -1.0], [0.0, 1.0]]), ValueError, "negative"),
    ("negative sparse", lambda: sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 1.0]])),
     ValueError, "negative"),
    ("negative int8", lambda: np.array([[-128, 1], [1, 0]], dtype=np.int8), ValueError,
     "negative"),
    ("no users", lambda: np.zeros((0, 5)), ValueError, "no users or no items"),
    ("no items", lambda: sp.csr_matrix((4, 0)), ValueError, "no users or no items"),
    ("all zeros", lambda: np.zeros((3, 3)), ValueError, "no interactions"),
    ("empty sparse", lambda: sp.csr_matrix((5, 4)), ValueError, "no interactions"),
    ("only explicit zeros", lambda: sp.csr_matrix(
        (np.zeros(2), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2)), ValueError,
     "no interactions"),
]


@pytest.mark.parametrize("label,make_bad,exc,fragment", BAD_TRAIN, ids=[b[0] for b in BAD_TRAIN])
def test_bad_train_matrix_rejected_and_model_kept(fitted, label, make_bad, exc, fragment):
    bad = make_bad()
    snap = snapshot(fitted)
    with pytest.raises(exc, match=fragment) as ei:
        fitted.fit(bad)
    assert "train" in message(ei)
    assert_unchanged(fitted, snap)


RECOMMEND_BAD = [
    (dict(users=-1), ValueError, "outside"),
    (dict(users=[-1]), ValueError, "outside"),
    (dict(users=30), ValueError, "outside"),
    (dict(users=np.array([2**63], dtype=np.uint64)), ValueError, "outside"),
    (dict(users=1.5), TypeError, "users must be"),
    (dict(users="a"), TypeError, "users must be"),
    (dict(users=True), TypeError, "users must be"),
    (dict(users=[[0, 1]]), TypeError, "users must be"),
    (dict(users=0, k=0), ValueError, "k must be"),
    (dict(users=0, k=-1), ValueError, "k must be"),
    (dict(users=0, k=[]), TypeError, "single positive int"),
    (dict(users=0, k=[5]), TypeError, "single positive int"),
    (dict(users=0, k=1.5), TypeError, "k must be"),
    (dict(users=0, k=True), TypeError, "k must be"),
    (dict(users=0, k="5"), TypeError, "k must be"),
    (dict(users=0, k=None), TypeError, "k must be"),
    (dict(users=0, exclude="everything"), ValueError, "exclude must be 'train'"),
    (dict(users=0, exclude=[[1]]), TypeError, "exclude"),
    (dict(users=0, n_threads=0), ValueError, "n_threads"),
    (dict(users=0, n_threads=1.5), TypeError, "n_threads"),
]


@pytest.mark.parametrize("kw,exc,fragment", RECOMMEND_BAD,
                         ids=[repr(c[0])[:40] for c in RECOMMEND_BAD])
def test_recommend_bad_inputs(fitted, kw, exc, fragment):
    snap = snapshot(fitted)
    with pytest.raises(exc, match=fragment):
        fitted.recommend(**kw)
    assert_unchanged(fitted, snap)


def test_recommend_exclude_shape_and_values_checked(fitted, split):
    snap = snapshot(fitted)
    with pytest.raises(ValueError, match="exclude: shape"):
        fitted.recommend(0, exclude=split[0][:, :5])
    with pytest.raises(ValueError, match="negative"):
        fitted.recommend(0, exclude=-split[0])
    assert_unchanged(fitted, snap)


@pytest.mark.parametrize("k", [np.array([5, 6]), {5, 6}, range(3, 5)],
                         ids=["ndarray", "set", "range"])
def test_recommend_rejects_several_cutoffs(k, fitted):
    """recommend returns one top-k list; a collection of k must not silently use min(k)."""
    with pytest.raises(TypeError, match="single positive int"):
        fitted.recommend(0, k=k)


def test_recommend_absurd_k_is_a_clear_error_not_memoryerror(fitted):
    with pytest.raises(ValueError, match=r"\bk\b"):
        fitted.recommend(0, k=10**12)


SCORE_BAD = [
    (dict(users=-1), ValueError, "users contains indices outside"),
    (dict(users=30), ValueError, "users contains indices outside"),
    (dict(users=[1.5]), TypeError, "users must be"),
    (dict(users=np.ones(30, bool)), TypeError, "users must be"),
    (dict(users=0, items=[-1]), ValueError, "items contains indices outside"),
    (dict(users=0, items=[20]), ValueError, "items contains indices outside"),
]


@pytest.mark.parametrize("kw,exc,fragment", SCORE_BAD, ids=[repr(c[0]) for c in SCORE_BAD])
def test_score_bad_ids(fitted, kw, exc, fragment):
    snap = snapshot(fitted)
    with pytest.raises(exc, match=fragment):
        fitted.score(**kw)
    assert_unchanged(fitted, snap)


@pytest.mark.parametrize("items", [[1.5], "a", [[1]], np.ones(20, bool)],
                         ids=["float", "str", "2-D", "bool mask"])
def test_score_bad_items_message_names_items(items, fitted):
    """The error for a bad ``items`` argument must talk about items, not users."""
    with pytest.raises(TypeError) as ei:
        fitted.score(0, items=items)
    assert "items" in message(ei) and "users must be" not in message(ei)


# -- parameters -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("params"))
def test_get_params_set_params_and_repr(name):
    model = make(name)
    params = model.get_params()
    names = [p for p in inspect.signature(type(model).__init__).parameters if p != "self"]
    assert list(params) == names
    clone = type(model)(**params)
    assert clone.get_params() == params
    text = repr(model)
    assert text.startswith(type(model).__name__ + "(")
    for k, v in params.items():
        assert f"{k}={v!r}" in text
    assert model.set_params(dtype=np.float64) is model and model.dtype is np.float64
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"no parameter 'learningrate'.*\['"):
        model.set_params(learningrate=0.1)
    assert_unchanged(model, snap)


def test_set_params_unknown_name_lists_valid_ones(fitted):
    snap = snapshot(fitted)
    valid = sorted(fitted.get_params())
    with pytest.raises(ValueError, match="no parameter 'learningrate'") as ei:
        fitted.set_params(learningrate=0.1)
    assert str(valid) in message(ei)
    assert_unchanged(fitted, snap)


# -- recommend never returns training items -------------------------------------------------------
@pytest.mark.parametrize("name", models_for("exclude"))
def test_recommend_excludes_training_items(name, small_synthetic):
    model = make(name).fit(small_synthetic)
    users = np.arange(small_synthetic.shape[0])
    items, scores = model.recommend(users, k=10, exclude=small_synthetic)
    assert items.shape == scores.shape == (len(users), 10)
    got = {(int(u), int(i)) for u, row in zip(users, items) for i in row if i >= 0}
    assert not got & pairs(small_synthetic)
    # by default the model's own training items are excluded
    default, _ = model.recommend(users, k=10)
    np.testing.assert_array_equal(default, items)
    # with exclude=None, training items may come back
    again, _ = model.recommend(users, k=10, exclude=None)
    assert {(int(u), int(i)) for u, row in zip(users, again) for i in row} & \
        pairs(small_synthetic)


@pytest.mark.parametrize("name", models_for("exclude"))
@settings(max_examples=30, deadline=None)
@given(M=interactions(max_users=6, max_items=6), seed=st.integers(0, 1000),
       k=st.integers(1, 8))
def test_property_recommend_never_returns_training_items(name, M, seed, k):
    rng = np.random.default_rng(seed)
    model = make(name)                       # factors given by hand
    width = 2 if applies(name, "trains") else 1
    if type(model)._extra_members:           # weights beyond the factors (NeuMF): fit them
        model.fit(sp.eye(4, 5, format="csr"))     # once, then the factors by hand
        width = type(model)._width(model.get_params())
    model.user_factors_ = rng.standard_normal((M.shape[0], width)).astype(np.float32)
    model.item_factors_ = rng.standard_normal((M.shape[1], width)).astype(np.float32)
    items, scores = model.recommend(None, k=k, exclude=M, n_threads=1)
    dense = M.toarray() > 0
    for u in range(M.shape[0]):
        valid = [i for i in items[u] if i >= 0]
        assert len(valid) == min(k, int((~dense[u]).sum()))
        assert len(set(valid)) == len(valid) and not dense[u, valid].any()
        assert list(items[u][len(valid):]) == [-1] * (k - len(valid))


# -- seeds and threads ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("reproducible"))
def test_seeded_single_thread_is_bitwise_reproducible(name, small_synthetic):
    seed = dict(random_state=5) if applies(name, "seed") else {}
    a = make(name, **seed).fit(small_synthetic)
    b = make(name, **seed).fit(small_synthetic)
    assert_same(a.user_factors_, b.user_factors_, "user_factors_")
    assert_same(a.item_factors_, b.item_factors_, "item_factors_")
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    if getattr(a, "optimizer_state_", None) is not None:
        assert_same(tuple(a.optimizer_state_), tuple(b.optimizer_state_), "optimizer_state_")
    a.fit(small_synthetic)                                 # refit the same object
    assert_same(a.user_factors_, b.user_factors_, "user_factors_")
    assert_same(a.item_factors_, b.item_factors_, "item_factors_")
    if applies(name, "seed"):
        c = make(name, random_state=6).fit(small_synthetic)
        assert not np.array_equal(a.user_factors_, c.user_factors_)
        assert not np.array_equal(a.item_factors_, c.item_factors_)


@pytest.mark.parametrize("name", models_for("threads"))
def test_several_threads_train(name, small_synthetic):
    model = make(name, n_threads=2).fit(small_synthetic)
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))


# -- warm start -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("init"))
def test_warm_start_from_model_leaves_init_untouched(name, small_synthetic):
    init = make(name, random_state=1).fit(small_synthetic)
    snap = snapshot(init)
    P0 = init.user_factors_.copy()
    model = make(name, epochs=2, random_state=2).fit(small_synthetic, init=init)
    assert_unchanged(init, snap)
    assert not np.array_equal(model.user_factors_, P0)
    # zero further epochs: the factors are a copy of init
    copy = make(name, epochs=0, **({"bpr_epochs": 0} if MODELS[name].cls is APR else {}))
    copy.fit(small_synthetic, init=init)
    np.testing.assert_array_equal(copy.user_factors_, P0)
    assert not np.shares_memory(copy.user_factors_, init.user_factors_)
    assert not np.shares_memory(copy.item_factors_, init.item_factors_)


@pytest.mark.parametrize("name", models_for("init"))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warm_start_from_tuple_leaves_init_untouched(name, dtype, small_synthetic):
    if not applies(name, "init_tuple"):
        pytest.skip(MODELS[name].na["init_tuple"])
    rng = np.random.default_rng(0)
    P = rng.standard_normal((small_synthetic.shape[0], 8)) * 0.1
    Q = rng.standard_normal((small_synthetic.shape[1], 8)) * 0.1
    P0, Q0 = P.copy(), Q.copy()
    model = make(name, dtype=dtype, epochs=2).fit(small_synthetic, init=(P, Q))
    np.testing.assert_array_equal(P, P0)
    np.testing.assert_array_equal(Q, Q0)
    assert model.user_factors_.dtype == dtype
    assert not np.allclose(model.user_factors_[:, :P0.shape[1]], P0)


# -- callback -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", models_for("callback"))
def test_callback_receives_stats_and_can_stop(name, small_synthetic):
    calls = []

    def callback(epoch, stats):
        calls.append((epoch, stats))
        return False if epoch == 3 else None

    model = make(name, epochs=6).fit(small_synthetic, callback=callback)
    assert [c[0] for c in calls] == [1, 2, 3]
    assert len(model.history_) == 3
    for epoch, stats in calls:
        assert stats["epoch"] == epoch and "loss" in stats and "seconds" in stats
    # the stopped model equals a model trained for exactly 3 epochs
    ref = make(name, epochs=3).fit(small_synthetic)
    np.testing.assert_array_equal(model.user_factors_, ref.user_factors_)
    assert make(name).fit(small_synthetic, callback=lambda e, s: None).history_[-1]["epoch"] \
        == n_epochs(make(name))
    # True (or anything but False) continues
    stopped = make(name, epochs=5).fit(small_synthetic, callback=lambda e, s: e < 2)
    assert [h["epoch"] for h in stopped.history_] == [1, 2]
    with pytest.raises(TypeError):
        make(name).fit(small_synthetic, callback="not callable")


# -- arguments a model would ignore are refused (house style 15) ----------------------------------
@pytest.mark.parametrize("name", [n for n in MODELS if not applies(n, "init")])
def test_fit_refuses_init_it_would_ignore(name, small_synthetic):
    model = make(name)
    init = (np.ones((small_synthetic.shape[0], 1)), np.ones((small_synthetic.shape[1], 1)))
    with pytest.raises((TypeError, ValueError), match="init"):
        model.fit(small_synthetic, init=init)
    assert learned_attributes(model) == []


def test_every_exemption_names_a_contract_point():
    """An exemption must name a point that some test asks about (``models_for`` or
    ``applies``), with a reason, so that a typo cannot exempt a model from nothing."""
    import inspect
    import re
    source = inspect.getsource(inspect.getmodule(test_every_exemption_names_a_contract_point))
    asked = set(re.findall(r'(?:models_for\(|applies\(name, )"(\w+)"\)', source))
    assert {"init", "callback", "planted"} <= asked
    for name, entry in MODELS.items():
        for point, reason in entry.na.items():
            assert point in asked, (name, point)
            assert isinstance(reason, str) and len(reason) > 10, (name, point)
