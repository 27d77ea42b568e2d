"""The shared model contract: every model passes the same suite.

Factor models: BPR (SGD, Adagrad) and APR (SGD, Adagrad, mini-batch of 8, random
noise). ItemPop passes the parts that apply to a model without training.
"""
import re

import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb import APR, BPR, DivergenceError, ItemPop, NotFittedError, evaluate
from aprnb.reference import naive_top_k, pairs

FACTOR_MODELS = {
    "bpr-sgd": (BPR, dict(optimizer="sgd")),
    "bpr-adagrad": (BPR, dict(optimizer="adagrad")),
    "apr-sgd": (APR, dict(optimizer="sgd")),
    "apr-adagrad": (APR, dict(optimizer="adagrad")),
    "apr-batch8": (APR, dict(optimizer="sgd", batch_size=8)),
    "apr-random": (APR, dict(optimizer="sgd", noise="random")),
}
SMALL = dict(factors=8, epochs=4, n_threads=1, random_state=0, show_progress=False)


def make(name, **kwargs):
    cls, base = FACTOR_MODELS[name]
    return cls(**{**SMALL, **base, **kwargs})


factor_model = pytest.mark.parametrize("name", list(FACTOR_MODELS))
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64])


def n_epochs(model):
    return model.epochs + getattr(model, "bpr_epochs", 0)


# -- learns the planted structure -----------------------------------------------------------------
@factor_model
def test_learns_planted_structure(name, synthetic_loo):
    """Beats ItemPop on a leave-one-out split of make_synthetic.

    APR starts from a converged BPR (``bpr_epochs``), as the paper does: from a
    0.01-std initialisation the eps=0.5 adversary is far larger than the embeddings.
    """
    train, test = synthetic_loo
    pop = evaluate(ItemPop().fit(train), train, test, k=[10], protocol="loo")
    settings = dict(factors=16, epochs=30)
    if FACTOR_MODELS[name][0] is APR:
        settings = dict(factors=16, bpr_epochs=20, epochs=10)
    model = make(name, **settings).fit(train)
    res = evaluate(model, train, test, k=[10], protocol="loo")
    assert res["hr@10"] > 1.5 * pop["hr@10"], (res, pop)
    assert res["ndcg@10"] > 1.5 * pop["ndcg@10"], (res, pop)
    assert res["auc"] > pop["auc"]


def test_itempop_ranks_by_popularity_with_tie_rule(synthetic):
    model = ItemPop().fit(synthetic)
    counts = np.asarray(synthetic.sum(axis=0)).ravel()
    np.testing.assert_array_equal(model.item_factors_.ravel(), counts)
    users = np.arange(0, synthetic.shape[0], 50)
    items, _ = model.recommend(users, k=30, exclude=synthetic)
    want, _ = naive_top_k(model.user_factors_, model.item_factors_, users, 30, synthetic)
    np.testing.assert_array_equal(items, want)


# -- determinism ----------------------------------------------------------------------------------
@factor_model
def test_seeded_single_thread_is_bitwise_reproducible(name, small_synthetic):
    a = make(name, random_state=5).fit(small_synthetic)
    b = make(name, random_state=5).fit(small_synthetic)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    a.fit(small_synthetic)                                 # refit the same object
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    c = make(name, random_state=6).fit(small_synthetic)
    assert not np.array_equal(a.user_factors_, c.user_factors_)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


@factor_model
def test_several_threads_train(name, small_synthetic):
    model = make(name, n_threads=2).fit(small_synthetic)
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))


# -- persistence ----------------------------------------------------------------------------------
def assert_same_model(a, b):
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert a.user_factors_.dtype == b.user_factors_.dtype
    assert a.history_ == b.history_
    sa, sb = getattr(a, "optimizer_state_", None), getattr(b, "optimizer_state_", None)
    assert (sa is None) == (sb is None)
    if sa is not None:
        for x, y in zip(sa, sb):
            np.testing.assert_array_equal(x, y)


@factor_model
@dtypes
def test_save_load_round_trip(name, dtype, small_synthetic, tmp_path):
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    model = make(name, dtype=dtype).fit(train, validation=val, validation_k=[5],
                                        validation_protocol="loo")
    path = tmp_path / "model.npz"
    assert model.save(path) == path
    loaded = aprnb.load(path)
    assert_same_model(model, loaded)
    if model.optimizer == "adagrad":
        assert loaded.optimizer_state_ is not None
    users = np.arange(train.shape[0])
    np.testing.assert_array_equal(model.recommend(users, 5, exclude=train)[0],
                                  loaded.recommend(users, 5, exclude=train)[0])
    # the loaded model can continue training
    more = make(name, dtype=dtype, epochs=1).fit(train, init=loaded)
    assert np.all(np.isfinite(more.user_factors_))


@dtypes
def test_itempop_save_load_round_trip(dtype, small_synthetic, tmp_path):
    model = ItemPop(dtype=dtype).fit(small_synthetic)
    model.save(tmp_path / "pop.npz")
    assert_same_model(model, aprnb.load(tmp_path / "pop.npz"))


def test_save_with_numpy_scalar_parameters(small_synthetic, tmp_path):
    """Parameters that come out of numpy (grid searches, np.arange) must save and load."""
    model = BPR(factors=np.int64(4), epochs=np.int64(1), learning_rate=np.float32(0.05),
                random_state=np.int64(3), n_threads=1, show_progress=False)
    model.fit(small_synthetic)
    model.save(tmp_path / "np.npz")
    loaded = aprnb.load(tmp_path / "np.npz")
    assert loaded.factors == 4 and loaded.random_state == 3
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)


# -- dtypes, return value, history ----------------------------------------------------------------
@factor_model
@dtypes
def test_dtype_fit_returns_self_and_history(name, dtype, small_synthetic):
    model = make(name, dtype=dtype)
    assert model.fit(small_synthetic) is model
    assert model.user_factors_.dtype == dtype and model.item_factors_.dtype == dtype
    assert model.user_factors_.shape == (small_synthetic.shape[0], 8)
    assert model.item_factors_.shape == (small_synthetic.shape[1], 8)
    assert model.user_factors_.flags.c_contiguous and model.item_factors_.flags.c_contiguous
    assert model.score([0, 1]).dtype == dtype
    assert len(model.history_) == n_epochs(model)
    for e, h in enumerate(model.history_, 1):
        assert h["epoch"] == e
        assert np.isfinite(h["loss"]) and h["loss"] > 0
        assert h["seconds"] >= 0
    if model.optimizer == "adagrad":
        GP, GQ = model.optimizer_state_
        assert GP.shape == model.user_factors_.shape and GQ.shape == model.item_factors_.shape
        assert GP.dtype == dtype and np.all(GP >= model.initial_accumulator)
    else:
        assert model.optimizer_state_ is None


@dtypes
def test_itempop_dtype_and_fit_returns_self(dtype, small_synthetic):
    model = ItemPop(dtype=dtype)
    assert model.fit(small_synthetic) is model
    assert model.user_factors_.dtype == dtype and model.item_factors_.dtype == dtype


def test_bpr_loss_decreases(synthetic):
    model = BPR(factors=16, epochs=15, n_threads=1, random_state=0,
                show_progress=False).fit(synthetic)
    losses = [h["loss"] for h in model.history_]
    assert losses[0] == pytest.approx(np.log(2), abs=0.01)   # std 0.01 init: x ~ 0
    assert losses[-1] < 0.6 * losses[0]


@factor_model
def test_validation_metric_in_history(name, small_synthetic):
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    model = make(name, epochs=5, bpr_epochs=0) if FACTOR_MODELS[name][0] is APR \
        else make(name, epochs=5)
    model.fit(train, validation=val, validation_k=[10], validation_protocol="loo",
              validation_every=2)
    with_metric = [h["epoch"] for h in model.history_ if "ndcg@10" in h]
    assert with_metric == [2, 4, 5]                        # every 2nd epoch and the last
    final = evaluate(model, train, val, k=[10], protocol="loo")
    assert model.history_[-1]["ndcg@10"] == final["ndcg@10"]
    model.fit(train, validation=val, validation_k=20, validation_metric="recall@20")
    assert all("recall@20" in h for h in model.history_)


@factor_model
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
    with pytest.raises(TypeError):
        make(name).fit(small_synthetic, callback="not callable")


# -- warm start -----------------------------------------------------------------------------------
@factor_model
def test_warm_start_from_model_leaves_init_untouched(name, small_synthetic):
    init = make(name, random_state=1).fit(small_synthetic)
    P0, Q0 = init.user_factors_.copy(), init.item_factors_.copy()
    state0 = None if init.optimizer_state_ is None else [a.copy() for a in init.optimizer_state_]
    model = make(name, epochs=2, random_state=2).fit(small_synthetic, init=init)
    np.testing.assert_array_equal(init.user_factors_, P0)
    np.testing.assert_array_equal(init.item_factors_, Q0)
    if state0 is not None:
        for a, b in zip(init.optimizer_state_, state0):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.user_factors_, P0)
    # zero further epochs: the factors are a copy of init
    copy = make(name, epochs=0, bpr_epochs=0) if FACTOR_MODELS[name][0] is APR \
        else make(name, epochs=0)
    copy.fit(small_synthetic, init=init)
    np.testing.assert_array_equal(copy.user_factors_, P0)
    assert not np.shares_memory(copy.user_factors_, init.user_factors_)
    assert not np.shares_memory(copy.item_factors_, init.item_factors_)


@factor_model
@dtypes
def test_warm_start_from_tuple_leaves_init_untouched(name, dtype, small_synthetic):
    rng = np.random.default_rng(0)
    P = rng.standard_normal((small_synthetic.shape[0], 8)) * 0.1
    Q = rng.standard_normal((small_synthetic.shape[1], 8)) * 0.1
    P0, Q0 = P.copy(), Q.copy()
    model = make(name, dtype=dtype, epochs=2).fit(small_synthetic, init=(P, Q))
    np.testing.assert_array_equal(P, P0)
    np.testing.assert_array_equal(Q, Q0)
    assert model.user_factors_.dtype == dtype
    assert not np.allclose(model.user_factors_, P0)


def test_warm_start_shape_mismatch_raises(small_synthetic):
    P = np.zeros((small_synthetic.shape[0], 3))
    Q = np.zeros((small_synthetic.shape[1], 3))
    with pytest.raises(ValueError, match="init"):
        BPR(factors=8, epochs=1, show_progress=False).fit(small_synthetic, init=(P, Q))
    with pytest.raises(TypeError):
        BPR(factors=8, epochs=1, show_progress=False).fit(small_synthetic, init=[P, Q])


# -- APR schedule and the Adagrad state -----------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_apr_bpr_epochs_schedule_switches_mode(optimizer, small_synthetic):
    kw = dict(SMALL, optimizer=optimizer)
    apr = APR(**{**kw, "bpr_epochs": 3, "epochs": 2}).fit(small_synthetic)
    assert [h["mode"] for h in apr.history_] == ["bpr"] * 3 + ["apr"] * 2
    assert [h["epoch"] for h in apr.history_] == [1, 2, 3, 4, 5]
    # the BPR phase is plain BPR: identical to a BPR model with the same seed
    bpr_phase = APR(**{**kw, "bpr_epochs": 3, "epochs": 0}).fit(small_synthetic)
    bpr = BPR(**{**kw, "epochs": 3}).fit(small_synthetic)
    np.testing.assert_array_equal(bpr_phase.user_factors_, bpr.user_factors_)
    np.testing.assert_array_equal(bpr_phase.item_factors_, bpr.item_factors_)
    # and the APR phase is not
    bpr5 = BPR(**{**kw, "epochs": 5}).fit(small_synthetic)
    assert not np.array_equal(apr.user_factors_, bpr5.user_factors_)


def test_apr_without_bpr_epochs_is_all_apr(small_synthetic):
    model = APR(**SMALL).fit(small_synthetic)
    assert [h["mode"] for h in model.history_] == ["apr"] * SMALL["epochs"]


def test_reset_optimizer_in_schedule(small_synthetic):
    """At the BPR -> APR switch, True restarts the accumulators, False carries them over."""
    # init_std=1 makes the BPR-phase gradients, hence its accumulators, large
    kw = dict(SMALL, optimizer="adagrad", init_std=1.0)
    G_bpr = BPR(**{**kw, "epochs": 5}).fit(small_synthetic).optimizer_state_
    keep = APR(**{**kw, "bpr_epochs": 5, "epochs": 1, "eps": 0.1, "reset_optimizer": False})
    reset = APR(**{**kw, "bpr_epochs": 5, "epochs": 1, "eps": 0.1, "reset_optimizer": True})
    keep.fit(small_synthetic)
    reset.fit(small_synthetic)
    for g_keep, g_reset, g_bpr in zip(keep.optimizer_state_, reset.optimizer_state_, G_bpr):
        assert np.all(g_keep >= g_bpr)                 # accumulators only grow
        assert np.mean(g_reset < g_bpr) > 0.3          # restarted at initial_accumulator
        assert not np.array_equal(g_keep, g_reset)


@pytest.mark.parametrize("cls", [BPR, APR])
def test_reset_optimizer_on_warm_start(cls, small_synthetic):
    kw = dict(SMALL, optimizer="adagrad")
    init = BPR(**kw).fit(small_synthetic)
    extra = dict(bpr_epochs=0) if cls is APR else {}
    keep = cls(**{**kw, **extra, "epochs": 0, "reset_optimizer": False})
    keep.fit(small_synthetic, init=init)
    for a, b in zip(keep.optimizer_state_, init.optimizer_state_):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    reset = cls(**{**kw, **extra, "epochs": 0, "reset_optimizer": True})
    reset.fit(small_synthetic, init=init)
    for a in reset.optimizer_state_:
        assert np.all(a == np.float32(reset.initial_accumulator))
    # with training, the two differ
    k1 = cls(**{**kw, **extra, "epochs": 1, "reset_optimizer": False}).fit(small_synthetic,
                                                                           init=init)
    r1 = cls(**{**kw, **extra, "epochs": 1, "reset_optimizer": True}).fit(small_synthetic,
                                                                          init=init)
    assert not np.array_equal(k1.optimizer_state_[0], r1.optimizer_state_[0])
    assert not np.array_equal(k1.user_factors_, r1.user_factors_)


def test_reset_optimizer_defaults():
    assert BPR().reset_optimizer is False
    assert APR().reset_optimizer is True


# -- divergence -----------------------------------------------------------------------------------
def check_divergence(model, X):
    with pytest.raises(DivergenceError) as info:
        model.fit(X)
    msg = str(info.value)
    found = re.search(r"epoch (\d+)", msg)
    assert found, msg
    bad = int(found.group(1))
    assert 1 <= bad <= n_epochs(model)
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))
    assert len(model.history_) == bad - 1
    # the kept state is exactly the last good epoch
    params = model.get_params()
    if isinstance(model, APR):
        params["epochs"] = max(0, bad - 1 - model.bpr_epochs)
        params["bpr_epochs"] = min(model.bpr_epochs, bad - 1)
    else:
        params["epochs"] = bad - 1
    ref = type(model)(**params).fit(X)
    np.testing.assert_array_equal(model.user_factors_, ref.user_factors_)
    np.testing.assert_array_equal(model.item_factors_, ref.item_factors_)
    return bad


@factor_model
@dtypes
def test_huge_learning_rate_raises_divergence_error(name, dtype, small_synthetic):
    lr = 1e30 if dtype == np.float32 else 1e300
    model = make(name, dtype=dtype, learning_rate=lr, init_std=1.0)
    check_divergence(model, small_synthetic)


@pytest.mark.parametrize("cls", [BPR, APR])
def test_divergence_after_good_epochs_keeps_last_good_epoch(cls, synthetic):
    model = cls(factors=8, epochs=6, learning_rate=10.0, init_std=1.0, n_threads=1,
                random_state=0, dtype=np.float64, show_progress=False, optimizer="sgd")
    assert check_divergence(model, synthetic) >= 2


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(DivergenceError, FloatingPointError)


# -- recommend ------------------------------------------------------------------------------------
@factor_model
def test_recommend_excludes_training_items(name, small_synthetic):
    model = make(name).fit(small_synthetic)
    users = np.arange(small_synthetic.shape[0])
    items, scores = model.recommend(users, k=10, exclude=small_synthetic)
    assert items.shape == scores.shape == (len(users), 10)
    got = {(int(u), int(i)) for u, row in zip(users, items) for i in row if i >= 0}
    assert not got & pairs(small_synthetic)
    # one user at a time gives the same lists as the batch
    for u in users[:10]:
        one, _ = model.recommend(int(u), k=10, exclude=small_synthetic)
        np.testing.assert_array_equal(one[0], items[u])
    # by default the model's own training items are excluded
    default, _ = model.recommend(users, k=10)
    np.testing.assert_array_equal(default, items)
    # with exclude=None, training items may come back
    again, _ = model.recommend(users, k=10, exclude=None)
    assert {(int(u), int(i)) for u, row in zip(users, again) for i in row} & \
        pairs(small_synthetic)


def test_itempop_recommend_excludes_training_items(small_synthetic):
    model = ItemPop().fit(small_synthetic)
    users = np.arange(small_synthetic.shape[0])
    items, _ = model.recommend(users, k=10, exclude=small_synthetic)
    got = {(int(u), int(i)) for u, row in zip(users, items) for i in row if i >= 0}
    assert not got & pairs(small_synthetic)


# -- input checks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [BPR(show_progress=False), APR(show_progress=False),
                                   ItemPop()])
def test_not_fitted(model):
    with pytest.raises(NotFittedError):
        model.recommend([0], k=3)


@pytest.mark.parametrize("name", ["bpr-sgd", "apr-sgd"])
def test_bad_training_input_raises_value_error(name):
    model = make(name)
    with pytest.raises(ValueError):
        model.fit(sp.csr_matrix((5, 4)))                                  # no interactions
    with pytest.raises(ValueError):
        model.fit(sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 1.0]])))    # negative
    with pytest.raises(ValueError):
        model.fit(np.array([[1.0, np.nan], [0.0, 1.0]]))                  # NaN
    with pytest.raises(ValueError):
        model.fit(np.ones(5))                                             # 1-D
    with pytest.raises(TypeError):
        model.fit([[1, 0], [0, 1]])                                       # a list


@pytest.mark.parametrize("params", [dict(factors=0), dict(learning_rate=-0.1),
                                    dict(learning_rate=0.0), dict(reg=-1.0),
                                    dict(optimizer="adam"), dict(epochs=-1),
                                    dict(n_threads=0), dict(batch_size=0),
                                    dict(eps=0.0), dict(noise="gaussian"),
                                    dict(bpr_epochs=-1)])
def test_bad_parameters_raise_value_error(params, small_synthetic):
    with pytest.raises(ValueError):
        APR(**{**SMALL, **params}).fit(small_synthetic)


@pytest.mark.parametrize("metric,protocol", [("ndgc@20", "holdout"), ("auc", "holdout"),
                                             ("ndcg@10", "holdout")])
def test_unknown_validation_metric_raises_value_error_before_training(metric, protocol,
                                                                      small_synthetic):
    """A metric that the validation protocol does not produce is a ValueError up front
    (``validation_k=20``: ``ndcg@10`` is not computed), not a KeyError after an epoch."""
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    calls = []
    with pytest.raises(ValueError):
        make("bpr-sgd").fit(train, validation=val, validation_k=20, validation_metric=metric,
                            validation_protocol=protocol,
                            callback=lambda e, s: calls.append(e))
    assert calls == []


def test_validation_shape_mismatch_raises(small_synthetic):
    with pytest.raises(ValueError):
        make("bpr-sgd").fit(small_synthetic, validation=sp.csr_matrix((3, 3)))


# -- defaults, provenance, raw ids ----------------------------------------------------------------
def test_defaults_are_the_papers_optimizer():
    """Problem 5: BPR() and APR() trained with constant-rate SGD, under which AMF does not
    beat continued MF-BPR; the paper's optimizer is Adagrad."""
    assert BPR().optimizer == "adagrad" and APR().optimizer == "adagrad"


def _csv_dataset(tmp_path):
    (tmp_path / "tr.csv").write_text("user,item\n" + "".join(
        f"u{u},i{i}\n" for u in range(12) for i in range(10) if (u + i) % 3 == 0))
    (tmp_path / "te.csv").write_text("user,item\n" + "".join(
        f"u{u},i{(1 - u) % 3}\n" for u in range(12)))            # (u + i) % 3 == 1
    return aprnb.data.open_dataset(tmp_path / "tr.csv", test=tmp_path / "te.csv")


@pytest.mark.parametrize("cls", [BPR, APR, ItemPop])
def test_model_keeps_training_data_provenance_and_ids(cls, tmp_path):
    """Problem 6: recommend returned training items by default, and models forgot ids."""
    ds = _csv_dataset(tmp_path)
    kw = {} if cls is ItemPop else dict(factors=4, epochs=2, n_threads=1, random_state=0,
                                        show_progress=False)
    model = cls(**kw).fit(ds)
    assert pairs(model.train_) == pairs(ds.train)
    assert model.user_ids_.tolist() == sorted(
        f"u{u}" for u in range(12))
    assert model.provenance_["split"] == ds.split
    assert model.provenance_["aprnb_version"] == aprnb.__version__
    model.save(tmp_path / "m.npz")
    loaded = aprnb.load(tmp_path / "m.npz")
    assert loaded.provenance_ == model.provenance_
    assert pairs(loaded.train_) == pairs(model.train_)
    np.testing.assert_array_equal(loaded.item_ids_, model.item_ids_)
    for m in (model, loaded):
        items, _ = m.recommend(np.arange(12), k=3)          # default: training items out
        got = {(u, int(i)) for u, row in enumerate(items) for i in row if i >= 0}
        assert not got & pairs(ds.train)
        raw, _ = m.recommend(["u4", "u0"], k=3, raw_ids=True)
        rows = m.user_index(["u4", "u0"])
        assert rows.tolist() == [m.user_ids_.tolist().index("u4"), 0]   # sorted as strings
        np.testing.assert_array_equal(raw, m.item_ids_[items[rows]])
        assert m.item_index("i9").tolist() == [9]


def test_recommend_refuses_without_known_training_data(tmp_path):
    model = BPR(factors=2, epochs=1, n_threads=1, random_state=0, show_progress=False)
    model.fit(np.eye(4))
    model.train_ = None            # as a model loaded from a format-1 file
    with pytest.raises(ValueError, match="does not know its training interactions"):
        model.recommend(0, k=2)
    assert model.recommend(0, k=2, exclude=None)[0].shape == (1, 2)
    with pytest.raises(ValueError, match="does not know the raw user ids"):
        model.recommend("a", k=2, raw_ids=True)


def test_warm_start_is_recorded_and_inherits_the_split(tmp_path):
    ds = _csv_dataset(tmp_path)
    kw = dict(factors=4, epochs=2, n_threads=1, random_state=0, show_progress=False)
    bpr = BPR(**kw).fit(ds)
    amf = APR(**kw).fit(ds.train, init=bpr)              # a bare matrix: the split carries over
    assert amf.provenance_["split"] == ds.split and amf.user_ids_ is bpr.user_ids_
    assert amf.provenance_["init"]["class"] == "BPR"
    assert amf.provenance_["init"]["train_fingerprint"] == bpr.provenance_["train_fingerprint"]
    other = sp.csr_matrix(np.ones((12, 10)) - ds.train.toarray())
    with pytest.warns(UserWarning, match="trained on a different interaction matrix"):
        mixed = APR(**kw).fit(other, init=bpr)
    # the warm start saw ds.train, which holds what `mixed` is now "tested" on
    test = sp.csr_matrix(np.logical_and(np.eye(12, 10), other.toarray() == 0))
    with pytest.raises(ValueError, match="warm-started .* from a model trained on a different"):
        aprnb.evaluate(mixed, other, test)
    assert sorted(mixed.provenance_["seen"]) == sorted(
        {bpr.provenance_["train_fingerprint"], mixed.provenance_["train_fingerprint"]})
    aprnb.evaluate(mixed, other, test, check_split=False)     # the override


def test_tampered_training_data_in_a_model_file_is_refused(tmp_path):
    ds = _csv_dataset(tmp_path)
    BPR(factors=2, epochs=1, n_threads=1, random_state=0, show_progress=False).fit(ds).save(
        tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    X = sp.csr_matrix((np.ones(len(arrays["train_indices"])), (arrays["train_indices"] + 1) % 10,
                       arrays["train_indptr"]), shape=(12, 10))
    X.sort_indices()                        # another sound matrix, not the recorded one
    arrays["train_indices"] = X.indices
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="do not match their recorded fingerprint"):
        aprnb.load(tmp_path / "bad.npz")
    del arrays["provenance"]
    np.savez(tmp_path / "bad2.npz", **arrays)
    with pytest.raises(ValueError, match="corrupted file"):
        aprnb.load(tmp_path / "bad2.npz")


def test_id_maps_of_any_dtype_survive_save_and_load(tmp_path):
    """Object or list id maps (e.g. from pandas) are stored as strings, never pickled."""
    X = np.eye(3)
    for uids in (np.array(["a", 5, "c"], dtype=object), ["x", "y", "z"], [10, 11, 12]):
        ds = aprnb.data.Dataset(train=sp.csr_matrix(X), test=sp.csr_matrix(np.roll(X, 1, 1)),
                                user_ids=uids, item_ids=np.array([7, 8, 9]))
        m = ItemPop().fit(ds)
        m.save(tmp_path / "m.npz")
        got = aprnb.load(tmp_path / "m.npz")
        assert got.user_ids_.tolist() == [str(u) if not isinstance(uids[0], int) else u
                                          for u in uids]
        assert got.recommend(got.user_ids_[0], k=1, raw_ids=True)[0].shape == (1, 1)


def test_raw_padding_that_is_a_real_id_is_refused():
    ds = aprnb.data.Dataset(train=sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]])),
                            test=sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]])),
                            user_ids=np.array([0, 1]), item_ids=np.array([-1, 4, 6]))
    m = ItemPop().fit(ds)
    assert m.recommend([0], k=1, raw_ids=True)[0].tolist() == [[6]]
    with pytest.raises(ValueError, match="padding -1 is also a real item id"):
        m.recommend([0], k=3, raw_ids=True)


def test_dataset_id_maps_must_fit_the_matrix_and_raw_ids_must_be_bool():
    X = sp.csr_matrix(np.eye(3))
    bad = aprnb.data.Dataset(train=X, user_ids=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="user_ids has 2 ids for 3 users"):
        ItemPop().fit(bad)
    bad = aprnb.data.Dataset(train=X, item_ids=np.arange(4))
    with pytest.raises(ValueError, match="item_ids has 4 ids for 3 items"):
        BPR(factors=2, epochs=1, show_progress=False).fit(bad)
    m = ItemPop().fit(X)
    with pytest.raises(TypeError, match="raw_ids must be True or False"):
        m.recommend(0, k=1, raw_ids="yes")
    with pytest.raises(TypeError, match="raw_ids must be True or False"):
        aprnb.evaluate(m, X, sp.csr_matrix(np.roll(np.eye(3), 1, 1)), raw_ids=1)
    with pytest.raises(TypeError, match="check_split must be True or False"):
        aprnb.evaluate(m, X, sp.csr_matrix(np.roll(np.eye(3), 1, 1)), check_split="no")
