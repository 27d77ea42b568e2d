"""Behaviour of the individual models beyond the shared contract.

ItemPop's ranking, bitwise determinism across optimizers, mini-batches, dtypes and
the APR schedule, the APR schedule and Adagrad state, defaults, provenance and raw
ids. What every model must do is in ``tests/test_model_contract.py``; input checks
in ``tests/test_models_input.py``; divergence, interrupts and degenerate data in
``tests/test_models_faults.py``; fit's callbacks (validation, early stopping) in
``tests/test_callbacks.py``; threads and slices in ``tests/test_threads.py``.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb import APR, BPR, ItemPop
from aprnb.reference import naive_top_k, pairs
from checks import FAST, assert_same

FACTOR_MODELS = (BPR, APR)
OPTIMIZERS = ("sgd", "adagrad")
SMALL = dict(factors=8, epochs=4, n_threads=1, random_state=0, show_progress=False)


# -- ItemPop -----------------------------------------------------------------------------------
def test_itempop_ranks_by_popularity_with_tie_rule(synthetic):
    model = ItemPop().fit(synthetic)
    counts = np.asarray(synthetic.sum(axis=0)).ravel()
    np.testing.assert_array_equal(model.item_factors_.ravel(), counts)
    users = np.arange(0, synthetic.shape[0], 50)
    items, _ = model.recommend(users, k=30, exclude=synthetic)
    want, _ = naive_top_k(model.user_factors_, model.item_factors_, users, 30, synthetic)
    np.testing.assert_array_equal(items, want)


# -- determinism across optimizers, mini-batches, dtypes and the APR schedule ------------------
@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_one_thread_and_a_seed_is_bitwise_reproducible(cls, optimizer, batch_size, dtype, X):
    params = dict(FAST, epochs=3, optimizer=optimizer, batch_size=batch_size, dtype=dtype)
    if cls is APR:
        params["bpr_epochs"] = 1
    a = cls(**params).fit(X)
    b = cls(**params).fit(X)
    a.fit(X)      # refitting the same object also restarts from the seed
    for m in (a, b):
        assert m.user_factors_.dtype == dtype
    assert_same(a.user_factors_, b.user_factors_, "user_factors_")
    assert_same(a.item_factors_, b.item_factors_, "item_factors_")
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    if optimizer == "adagrad":
        assert_same(tuple(a.optimizer_state_), tuple(b.optimizer_state_), "state")
    c = cls(**dict(params, random_state=1)).fit(X)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


# -- training ----------------------------------------------------------------------------------
def test_bpr_loss_decreases(synthetic):
    model = BPR(factors=16, epochs=15, n_threads=1, random_state=0,
                show_progress=False).fit(synthetic)
    losses = [h["loss"] for h in model.history_]
    assert losses[0] == pytest.approx(np.log(2), abs=0.01)   # std 0.01 init: x ~ 0
    assert losses[-1] < 0.6 * losses[0]


# -- APR schedule and the Adagrad state --------------------------------------------------------
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


# -- defaults, provenance, raw ids -------------------------------------------------------------
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


# -- VAT -------------------------------------------------------------------------------------------

def test_vat_with_every_user_factor_one_is_apr_bitwise(small_synthetic, monkeypatch):
    """VAT's only change to APR is the per-user radius factor (docs/derivations.md, (V3))."""
    from aprnb.models import _training
    kw = dict(factors=8, epochs=3, bpr_epochs=2, n_threads=1, random_state=5, show_progress=False)
    apr = aprnb.APR(**kw).fit(small_synthetic)
    real = _training.vat_scale
    monkeypatch.setattr(_training, "vat_scale",
                        lambda run, lam: np.ones_like(real(run, lam)))
    vat = aprnb.VAT(**kw).fit(small_synthetic)
    np.testing.assert_array_equal(vat.user_factors_, apr.user_factors_)
    np.testing.assert_array_equal(vat.item_factors_, apr.item_factors_)
    assert [h["mode"] for h in vat.history_] == ["bpr"] * 2 + ["vat"] * 3
    monkeypatch.undo()                                  # the real factors train differently
    other = aprnb.VAT(**kw).fit(small_synthetic)
    assert not np.array_equal(other.user_factors_, apr.user_factors_)


def test_vat_refuses_mini_batches(small_synthetic):
    with pytest.raises(ValueError, match="batch_size=1"):
        aprnb.VAT(batch_size=8, epochs=1, show_progress=False).fit(small_synthetic)


@pytest.mark.parametrize("value, exc", [(0.0, ValueError), (-1.0, ValueError),
                                        (float("nan"), ValueError), ("2", TypeError)])
def test_vat_rejects_a_bad_vul_lambda(small_synthetic, value, exc):
    model = aprnb.VAT(vul_lambda=value, epochs=1, show_progress=False)
    with pytest.raises(exc, match="vul_lambda"):
        model.fit(small_synthetic)
    assert not hasattr(model, "user_factors_")
