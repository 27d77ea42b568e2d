"""Faults during training and degenerate data: nothing is lost, everything terminates.

Divergence raises :class:`aprnb.DivergenceError` and keeps the last good epoch;
``KeyboardInterrupt`` from the callback keeps the completed epochs; tiny, full or
empty matrices train, evaluate and perturb; every accepted input container gives a
bitwise identical fit.
"""
import copy
import gc
import re
import warnings
import weakref

import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb import APR, BPR, DivergenceError, ItemPop
from aprnb import data as D
from checks import CONFIGURATIONS, FAST, assert_same, assert_unchanged, fit_fast, snapshot


FACTOR_MODELS = (BPR, APR)


OPTIMIZERS = ("sgd", "adagrad")


# -- divergence --------------------------------------------------------------------------------
def n_epochs(model):
    return model.epochs + getattr(model, "bpr_epochs", 0)


def check_divergence(model, X):
    """``model.fit(X)`` diverges; the model keeps exactly its last good epoch and works.

    Returns the epoch (1-based) at which training diverged.
    """
    with pytest.raises(DivergenceError) as info:
        model.fit(X)
    msg = str(info.value)
    found = re.search(r"diverged at epoch (\d+)", msg)
    assert found, msg
    bad = int(found.group(1))
    assert 1 <= bad <= n_epochs(model)
    assert "smaller learning_rate" in msg
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))
    assert len(model.history_) == bad - 1
    assert all(np.isfinite(h["loss"]) for h in model.history_)
    # the kept state is exactly that of a run stopped after the completed epochs
    params = model.get_params()
    if isinstance(model, APR):
        params["epochs"] = max(0, bad - 1 - model.bpr_epochs)
        params["bpr_epochs"] = min(model.bpr_epochs, bad - 1)
    else:
        params["epochs"] = bad - 1
    ref = type(model)(**params).fit(X)
    assert_same(model.user_factors_, ref.user_factors_, "user_factors_")
    assert_same(model.item_factors_, ref.item_factors_, "item_factors_")
    if model.optimizer == "adagrad":
        assert_same(tuple(model.optimizer_state_), tuple(ref.optimizer_state_), "state")
    # and the model is usable
    model.recommend([0, 1], k=3, exclude=X)
    return bad


# From a moderate learning rate (10: some good epochs first) to an absurd one, per optimizer.
@pytest.mark.parametrize("cls,optimizer,lr", [
    (BPR, "sgd", 10.0), (BPR, "sgd", 1e6), (BPR, "adagrad", 1e30),
    (APR, "sgd", 10.0), (APR, "sgd", 1e6), (APR, "adagrad", 1e30),
])
def test_divergence_raises_and_keeps_last_good_epoch(cls, optimizer, lr, X):
    check_divergence(cls(**dict(FAST, epochs=30, learning_rate=lr, optimizer=optimizer)), X)


# Every configuration of the model contract, both float widths, a learning rate that
# overflows at once from a large initialisation.
DIVERGING = CONFIGURATIONS


@pytest.mark.parametrize("name", list(DIVERGING))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_learning_rate_raises_divergence_error(name, dtype, small_synthetic):
    cls, base = DIVERGING[name]
    lr = 1e30 if dtype == np.float32 else 1e300
    model = cls(**{**FAST, "factors": 8, "epochs": 4, **base, "dtype": dtype,
                   "learning_rate": lr, "init_std": 1.0})
    check_divergence(model, small_synthetic)


def test_divergence_after_some_epochs_is_covered(X):
    """Guard for the test above: at lr=10 BPR/SGD completes epochs before it diverges."""
    model = BPR(**dict(FAST, epochs=30, learning_rate=10.0, optimizer="sgd"))
    with pytest.raises(DivergenceError):
        model.fit(X)
    assert len(model.history_) >= 1


@pytest.mark.parametrize("cls", [BPR, APR])
def test_divergence_after_good_epochs_keeps_last_good_epoch(cls, synthetic):
    model = cls(factors=8, epochs=6, learning_rate=10.0, init_std=1.0, n_threads=1,
                random_state=0, dtype=np.float64, show_progress=False, optimizer="sgd")
    assert check_divergence(model, synthetic) >= 2


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
def test_divergence_in_warm_start_leaves_init_untouched(cls, X):
    source = fit_fast(BPR, X)
    snap = snapshot(source)
    model = cls(**dict(FAST, epochs=5, learning_rate=1e30, optimizer="adagrad"))
    with pytest.raises(DivergenceError):
        model.fit(X, init=source)
    assert_unchanged(source, snap)
    assert np.all(np.isfinite(model.user_factors_))


def test_divergence_error_is_a_floating_point_error():
    assert issubclass(DivergenceError, FloatingPointError)


# -- KeyboardInterrupt -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_keyboard_interrupt_keeps_completed_epochs(cls, optimizer, batch_size, X, tmp_path):
    params = dict(FAST, epochs=6, optimizer=optimizer, batch_size=batch_size)
    seen = []

    def callback(epoch, stats):
        seen.append(epoch)
        if epoch == 3:
            raise KeyboardInterrupt

    model = cls(**params)
    with pytest.warns(RuntimeWarning, match="interrupted.*3 completed epoch"):
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, callback=callback)
    assert seen == [1, 2, 3]
    assert [h["epoch"] for h in model.history_] == [1, 2, 3]
    ref = cls(**dict(params, epochs=3)).fit(X)
    assert_same(model.user_factors_, ref.user_factors_, "user_factors_")
    assert_same(model.item_factors_, ref.item_factors_, "item_factors_")
    assert [h["loss"] for h in model.history_] == [h["loss"] for h in ref.history_]
    if optimizer == "adagrad":
        assert_same(tuple(model.optimizer_state_), tuple(ref.optimizer_state_), "state")
    # a consistent fitted model: it recommends, saves and loads
    model.recommend([0], k=3, exclude=X)
    model.save(tmp_path / "m.npz")
    assert len(aprnb.load(tmp_path / "m.npz").history_) == 3


@pytest.mark.parametrize("cls, params", [
    (aprnb.CDAE, dict(hidden=8)),
    (aprnb.IRGAN, dict(factors=8, bpr_epochs=1)),
    (aprnb.NeuMF, dict(factors=4, layers=(8, 4), pretrain_epochs=1)),
], ids=lambda c: getattr(c, "__name__", ""))
def test_keyboard_interrupt_in_the_other_models(cls, params, X, tmp_path):
    """CDAE, IRGAN and NeuMF: the model holds what it completed (the warning says how
    many epochs, its history has them all) and equals a fit stopped there."""
    params = dict(params, epochs=4, n_threads=1, random_state=0, show_progress=False)

    def callback(epoch, stats):
        if epoch == 2:
            raise KeyboardInterrupt

    model = cls(**params)
    with pytest.warns(RuntimeWarning, match="interrupted") as caught:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, callback=callback)
    n = len(model.history_)
    assert f"holds the {n} completed epoch" in str(caught[0].message)
    # IRGAN's internal BPR and NeuMF's pre-training come first in history_
    done = sum(h.get("mode") not in ("bpr", "pretrain-gmf", "pretrain-mlp")
               for h in model.history_)
    assert 1 <= done < 4
    ref = cls(**dict(params, epochs=done)).fit(X)
    assert [h["loss"] for h in model.history_] == [h["loss"] for h in ref.history_]
    assert_same(model.user_factors_, ref.user_factors_, "user_factors_")
    model.save(tmp_path / "m.npz")
    assert len(aprnb.load(tmp_path / "m.npz").history_) == n


def test_keyboard_interrupt_during_neumf_pretraining_leaves_the_model_unchanged(
        X, monkeypatch):
    """Ctrl-C in NCF's pre-training (before the fused network exists): the warning says
    so, and a fitted model keeps everything it had."""
    from aprnb.models.neumf import NeuMF
    params = dict(factors=4, layers=(8, 4), epochs=1, pretrain_epochs=2, n_threads=1,
                  random_state=0, show_progress=False)
    model = NeuMF(**params).fit(X)
    snap = snapshot(model)
    real = NeuMF._epoch

    def epoch(self, run, samples, adversarial, threads, branch="both"):
        if branch == "mlp":
            raise KeyboardInterrupt
        return real(self, run, samples, adversarial, threads, branch)

    monkeypatch.setattr(NeuMF, "_epoch", epoch)
    with pytest.warns(RuntimeWarning, match="interrupted during pre-training; the model "
                      "is unchanged"):
        with pytest.raises(KeyboardInterrupt):
            model.fit(X)
    assert_unchanged(model, snap)


def test_keyboard_interrupt_in_first_epoch_of_a_refit(X):
    """Interrupting a refit before any epoch completes leaves a consistent model."""
    model = fit_fast(BPR, X)

    def callback(epoch, stats):
        raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning):
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, callback=callback)
    assert len(model.history_) == 1
    assert np.all(np.isfinite(model.user_factors_))
    assert model.user_factors_.shape == (30, 4)


# -- degenerate data terminates and works ------------------------------------------------------
@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_user_with_every_item_is_warned_and_skipped(cls, optimizer):
    dense = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [0, 1, 0, 0]], dtype=np.float32)
    model = cls(**dict(FAST, optimizer=optimizer))
    with pytest.warns(RuntimeWarning, match="1 user\\(s\\) interacted with every item"):
        model.fit(dense)
    assert np.all(np.isfinite(model.user_factors_))
    items, _ = model.recommend(0, k=2, exclude=dense)
    assert items.tolist() == [[-1, -1]]
    items, _ = model.recommend(1, k=2, exclude=dense)
    assert sorted(items[0].tolist()) == [1, 2]


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dense,full_users", [
    (np.ones((3, 4)), 3),             # everybody interacted with everything
    (np.ones((5, 1)), 5),             # a single item
    (np.ones((1, 1)), 1),             # a single user and a single item
    (np.array([[1, 0, 1, 0]]), 0),    # a single user
    (np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]]), 0),   # empty rows
], ids=["all full", "single item", "1x1", "single user", "empty rows"])
def test_degenerate_shapes_terminate(cls, dense, full_users):
    model = cls(**dict(FAST, epochs=3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(dense)
    assert any("every item" in str(w.message) for w in caught) == (full_users > 0)
    assert len(model.history_) == 3
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))
    with pytest.raises(ValueError, match="are ones this .* was trained on"):
        aprnb.evaluate(model, dense, dense, k=1, exclude_train=False)
    res = aprnb.evaluate(model, dense, dense, k=1, exclude_train=False, check_split=False)
    assert all(0.0 <= v <= 1.0 for key, v in res.items() if key != "n_users")
    items, _ = model.recommend(0, k=2, exclude=dense)
    assert items.shape == (1, 2)
    for kind in ("adversarial", "random", "pgd"):
        P, Q = aprnb.perturb(model, dense, 0.5, kind=kind, random_state=0, steps=2)
        assert np.all(np.isfinite(P)) and np.all(np.isfinite(Q))


def test_itempop_degenerate_and_split_of_single_interactions():
    dense = np.array([[1, 0], [0, 0], [1, 1]])
    pop = ItemPop().fit(dense)
    assert pop.item_factors_.ravel().tolist() == [2.0, 1.0]
    assert pop.recommend(1, k=3)[0].tolist() == [[0, 1, -1]]
    tr, te = D.leave_one_out(np.eye(3), random_state=0)
    assert te.nnz == 0 and tr.nnz == 3      # single interactions stay in train
    tr, te = D.holdout_split(np.eye(3), 0.5, random_state=0)
    assert te.nnz == 0 and tr.nnz == 3


# -- every input container ---------------------------------------------------------------------
def _input_variants():
    """The same 5 x 6 interactions in every accepted container, with dirt added."""
    rows = np.array([0, 0, 1, 2, 2, 2, 4, 4, 0])
    cols = np.array([5, 1, 3, 0, 4, 2, 1, 5, 1])    # unsorted; (0, 1) twice
    vals = np.array([1, 2, 1, 1, 3, 1, 1, 1, 1], dtype=np.float64)  # counts, not ones
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(5, 6))
    dense = np.zeros((5, 6))
    dense[rows, cols] = 1.0
    unsorted = sp.csr_matrix((vals, np.array([5, 1, 1, 3, 0, 4, 2, 1, 5]),
                              np.array([0, 3, 4, 7, 7, 9])), shape=(5, 6))
    unsorted.has_sorted_indices = False
    int64 = sp.csr_matrix(dense)
    int64.indices = int64.indices.astype(np.int64)
    int64.indptr = int64.indptr.astype(np.int64)
    explicit_zero = sp.csr_matrix(dense)
    explicit_zero = sp.csr_matrix((np.append(explicit_zero.data, 0.0),
                                   np.append(explicit_zero.indices, 0),
                                   np.append(explicit_zero.indptr[:-1],
                                             explicit_zero.nnz + 1)), shape=(5, 6))
    return {
        "csr": sp.csr_matrix(dense), "coo with duplicates": coo, "csc": coo.tocsc(),
        "dok": sp.dok_matrix(dense), "lil": sp.lil_matrix(dense),
        "csr_array": sp.csr_array(dense), "unsorted csr with duplicates": unsorted,
        "dense float64": dense, "dense bool": dense.astype(bool),
        "dense int": dense.astype(np.int64), "dense uint8 counts": (dense * 7).astype(np.uint8),
        "np.matrix": np.asmatrix(dense), "int64 indices": int64,
        "float32 csr": sp.csr_matrix(dense.astype(np.float32)),
        "stored zero": explicit_zero,
    }


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
def test_every_input_container_gives_bitwise_identical_fits(cls):
    variants = _input_variants()
    ref = cls(**dict(FAST, epochs=3)).fit(variants["csr"])
    for name, M in variants.items():
        snap = copy.deepcopy(M)
        model = cls(**dict(FAST, epochs=3)).fit(M)
        assert_same(model.user_factors_, ref.user_factors_, name)
        assert_same(model.item_factors_, ref.item_factors_, name)
        # the caller's matrix is never modified (not even sorted or deduplicated in place)
        if sp.issparse(M) and M.format in ("csr", "csc", "coo"):
            assert_same(M, snap, name)
            assert M.has_canonical_format == snap.has_canonical_format, name
        elif sp.issparse(M):
            assert_same(M.toarray(), snap.toarray(), name)
        else:
            assert_same(np.asarray(M), np.asarray(snap), name)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_every_input_container_evaluates_and_splits_the_same():
    variants = _input_variants()
    P = np.random.default_rng(0).standard_normal((5, 3))
    Q = np.random.default_rng(1).standard_normal((6, 3))
    ref_split = D.holdout_split(variants["csr"], 0.5, random_state=0)
    ref_eval = aprnb.evaluate((P, Q), ref_split[0], ref_split[1], k=[2, 4])
    for name, M in variants.items():
        tr, te = D.holdout_split(M, 0.5, random_state=0)
        assert (tr != ref_split[0]).nnz == 0 and (te != ref_split[1]).nnz == 0, name
        assert aprnb.evaluate((P, Q), M, te, k=[2, 4], exclude_train=False) == \
            aprnb.evaluate((P, Q), variants["csr"], te, k=[2, 4], exclude_train=False), name
    assert ref_eval["n_users"] > 0


# -- memory ------------------------------------------------------------------------------------
def test_sgd_fit_does_not_keep_the_initial_factors_alive():
    X = sp.random(40, 30, density=0.2, format="csr", random_state=0)
    init = (np.random.default_rng(0).standard_normal((40, 4)),
            np.random.default_rng(1).standard_normal((30, 4)))
    seen = []

    class Spy(aprnb.BPR):
        def _initial_factors(self, *a, **kw):
            P, Q, state = super()._initial_factors(*a, **kw)
            seen.append(weakref.ref(P))
            return P, Q, state

    class Check(aprnb.models.callbacks.Callback):
        def on_epoch_end(self, epoch, stats, run):
            # Two tables at most: the aligned ones the kernels update and the last good
            # epoch's. The initial factors are the working table (they start on a huge
            # page), the last good one, or freed.
            gc.collect()
            assert seen[0]() is None or seen[0]() is run.P or seen[0]() is m.user_factors_, \
                "the initial factors are kept beside the working and last-good tables"
            assert run.P is not m.user_factors_

    cb = Check()
    m = Spy(factors=4, epochs=2, random_state=0, show_progress=False)
    m.fit(X, init=init, callback=cb)
