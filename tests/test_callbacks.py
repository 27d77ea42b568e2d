"""fit's callbacks (Validation, EarlyStopping, plain functions) and the thread/slice rule."""
import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb.models.callbacks import Callback, EarlyStopping, Validation
from checks import CONFIGURATIONS, assert_same

FACTOR_MODELS = CONFIGURATIONS
factor_model = pytest.mark.parametrize("name", list(FACTOR_MODELS))


def model(cls=aprnb.BPR, **kw):
    args = dict(factors=16, epochs=6, random_state=0, show_progress=False, n_threads=1)
    args.update(kw)
    return cls(**args)


class Recorder(Callback):
    """Scores the live factors with the public evaluate, after each epoch."""

    def __init__(self, train, test, **kw):
        self.train, self.test, self.kw, self.seen = train, test, kw, {}

    def on_epoch_end(self, epoch, stats, run):
        P, Q = run.P.copy(), run.Q.copy()
        self.seen[epoch] = aprnb.evaluate((P, Q), self.train, self.test, **self.kw)


@pytest.mark.parametrize("protocol,k,metric",
                         [("loo", [5, 20], "hr@5"), ("holdout", 10, None)])
def test_validation_equals_public_evaluate_on_its_epochs(synthetic_loo, protocol, k, metric):
    """Validation scores exactly what evaluate scores, after every ``every``-th epoch
    and after the last one, and nowhere else."""
    train, test = synthetic_loo
    name = metric or "ndcg@10"
    rec = Recorder(train, test, k=k, protocol=protocol)
    val = Validation(test, k=k, protocol=protocol, metric=metric, every=2)
    m = model(epochs=5).fit(train, callback=[rec, val])
    for e, h in enumerate(m.history_, start=1):
        if e in (2, 4, 5):
            assert h[name] == rec.seen[e][name]
        else:
            assert name not in h


def test_validation_under_the_sampled_protocol(synthetic_loo):
    train, test = synthetic_loo
    rng = np.random.default_rng(0)
    neg = rng.integers(0, train.shape[1], size=(train.shape[0], 20))
    neg[train.toarray()[np.arange(train.shape[0])[:, None], neg] > 0] = -1
    rec = Recorder(train, test, k=5, negatives=neg)
    m = model(epochs=2).fit(train, callback=[rec, Validation(test, k=5, negatives=neg)])
    assert m.history_[-1]["ndcg@5"] == rec.seen[2]["ndcg@5"]


def test_early_stopping_restores_the_best_epoch(synthetic_loo):
    """The fitted factors are those of the best-scoring epoch (their score is the best
    score), training stopped ``patience`` scorings after it, and history keeps every
    epoch that ran. Adagrad's accumulators come back with the factors."""
    train, test = synthetic_loo
    val = Validation(test, k=20, protocol="loo")
    stop = EarlyStopping(patience=2)
    snaps = {}

    class Keep(Callback):
        def on_epoch_end(self, epoch, stats, run):
            snaps[epoch] = run.snapshot()

    m = model(aprnb.APR, epochs=60, learning_rate=0.5, eps=3.0).fit(
        train, callback=[val, stop, Keep()])
    scores = [h["ndcg@20"] for h in m.history_]
    assert stop.stopped_epoch is not None, "the set-up must overfit for this test"
    assert len(m.history_) == stop.stopped_epoch == stop.best_epoch + 2
    assert stop.best_score == max(scores) == scores[stop.best_epoch - 1]
    P, Q, GP, GQ = snaps[stop.best_epoch]
    np.testing.assert_array_equal(m.user_factors_, P)
    np.testing.assert_array_equal(m.optimizer_state_[1], GQ)
    res = aprnb.evaluate(m, train, test, k=20, protocol="loo")
    assert res["ndcg@20"] == stop.best_score


def test_early_stopping_without_restore_keeps_the_last_epoch(synthetic_loo):
    train, test = synthetic_loo
    stop = EarlyStopping(patience=1, restore_best=False)
    m = model(epochs=40, learning_rate=0.5).fit(
        train, callback=[Validation(test, k=20, protocol="loo"), stop])
    res = aprnb.evaluate(m, train, test, k=20, protocol="loo")
    assert res["ndcg@20"] == m.history_[-1]["ndcg@20"]


def test_early_stopping_min_mode_and_min_delta():
    stop = EarlyStopping(metric="x", patience=1, min_delta=0.5, mode="min")
    stop.best_score = 1.0
    assert not stop._better(0.6) and stop._better(0.4)


@pytest.mark.parametrize("callbacks,error,match", [
    (lambda t: [EarlyStopping()], ValueError, "no Validation before it"),
    (lambda t: [EarlyStopping(), Validation(t)], ValueError, "no Validation before it"),
    (lambda t: [Validation(t, k=10), EarlyStopping("ndcg@20")], ValueError, "'ndcg@20'"),
    (lambda t: [Validation(t), EarlyStopping(patience=0)], ValueError, "patience"),
    (lambda t: [Validation(t), EarlyStopping(mode="up")], ValueError, "mode"),
    (lambda t: [Validation(t), EarlyStopping(restore_best=1)], TypeError, "restore_best"),
    (lambda t: [Validation(t[:5])], ValueError, "Validation test: shape"),
    (lambda t: [Validation(sp.csr_matrix((3, 3)))], ValueError, "Validation test: shape"),
    (lambda t: [Validation(-t)], ValueError, "negative"),
    (lambda t: [Validation([[0, 1]])], TypeError, "Validation test"),
    (lambda t: [Validation(t, k=0)], ValueError, "Validation k"),
    (lambda t: [Validation(t, k=[])], ValueError, "Validation k"),
    (lambda t: [Validation(t, k=5000)], ValueError, "Validation k=5000 is far larger"),
    (lambda t: [Validation(t, protocol="sampled")], ValueError, "needs Validation negatives"),
    (lambda t: [Validation(t, protocol="holdout", negatives=np.zeros((t.shape[0], 2),
                                                                     dtype=int))],
     ValueError, "Validation negatives were given with Validation protocol='holdout'"),
    (lambda t: [Validation(t, every=0)], ValueError, "Validation every"),
    (lambda t: [Validation(t, every=True)], TypeError, "Validation every"),
    (lambda t: [Validation(t, metric="auc")], ValueError, "not computed by protocol"),
    (lambda t: [Validation(t, protocol="loo", metric="recall@20")], ValueError,
     "not computed by protocol"),
    (lambda t: "not callable", TypeError, "callback must be callable"),
    (lambda t: [print, 3], TypeError, "callback must be callable"),
])
def test_bad_callbacks_fail_before_training(synthetic_loo, callbacks, error, match):
    """Misconfigured callbacks are refused when fit starts, before any epoch, and a
    fitted model keeps its state."""
    train, test = synthetic_loo
    m = model(epochs=1).fit(train)
    before = m.user_factors_.copy()
    with pytest.raises(error, match=match):
        m.set_params(epochs=3).fit(train, callback=callbacks(test))
    np.testing.assert_array_equal(m.user_factors_, before)
    assert len(m.history_) == 1


@pytest.mark.parametrize("metric,protocol,exc", [
    ("bogus", "loo", ValueError), ("recall@20", "loo", ValueError),
    (5, "loo", (ValueError, TypeError)),
    ("ndgc@20", "holdout", ValueError), ("auc", "holdout", ValueError),
    ("ndcg@10", "holdout", ValueError)])
def test_unknown_validation_metric_rejected_before_training(metric, protocol, exc,
                                                            synthetic_loo):
    """The metric name is known up front: one the protocol does not produce (k=20:
    ndcg@10 is not computed) is an error before any epoch, not a KeyError after one."""
    train, test = synthetic_loo
    epochs_run = []
    with pytest.raises(exc, match="metric"):
        model().fit(train, callback=[Validation(test, k=20, protocol=protocol, metric=metric),
                                     lambda e, s: epochs_run.append(e)])
    assert epochs_run == []


def test_several_test_items_under_loo_are_refused(synthetic, synthetic_loo):
    with pytest.raises(ValueError, match="at most one test item"), \
            pytest.warns(RuntimeWarning, match="also training interactions"):
        model().fit(synthetic_loo[0], callback=Validation(synthetic, protocol="loo"))


@factor_model
def test_validation_metric_in_history(name, small_synthetic):
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    cls, kw = FACTOR_MODELS[name]
    m = model(cls, epochs=5, factors=8, **kw)
    m.fit(train, callback=Validation(val, k=[10], protocol="loo", every=2))
    assert [h["epoch"] for h in m.history_ if "ndcg@10" in h] == [2, 4, 5]
    final = aprnb.evaluate(m, train, val, k=[10], protocol="loo")
    assert m.history_[-1]["ndcg@10"] == final["ndcg@10"]
    m.fit(train, callback=Validation(val, k=20, metric="recall@20"))
    assert all("recall@20" in h for h in m.history_)


@factor_model
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_validation_history_survives_save_and_load(name, dtype, small_synthetic, tmp_path):
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    cls, kw = FACTOR_MODELS[name]
    m = model(cls, epochs=4, factors=8, dtype=dtype, **kw).fit(
        train, callback=Validation(val, k=[5], protocol="loo"))
    assert all("ndcg@5" in h for h in m.history_)
    m.save(tmp_path / "model.npz")
    loaded = aprnb.load(tmp_path / "model.npz")
    assert_same(loaded.history_, m.history_, "history_")
    assert_same(loaded.user_factors_, m.user_factors_, "user_factors_")


def test_validation_of_the_training_matrix_is_refused(synthetic_loo):
    train, _ = synthetic_loo
    with pytest.raises(ValueError, match="every metric would be 0"):
        model().fit(train, callback=Validation(train))


def test_fit_takes_data_only():
    """The validation knobs left fit's signature for the callbacks."""
    with pytest.raises(TypeError, match="validation"):
        model().fit(sp.eye(5, format="csr"), validation=sp.eye(5, format="csr"))


def test_plain_function_gets_a_copy_and_can_stop(synthetic_loo):
    train, _ = synthetic_loo
    seen = []

    def cb(epoch, stats):
        stats["loss"] = -1.0
        seen.append(epoch)
        return epoch < 3 and None

    m = model(epochs=10).fit(train, callback=cb)
    assert seen == [1, 2, 3] and len(m.history_) == 3
    assert all(h["loss"] > 0 for h in m.history_)


def test_itempop_runs_its_callbacks_once_and_refuses_init(synthetic_loo):
    train, test = synthetic_loo
    p = aprnb.ItemPop().fit(train, callback=Validation(test, k=100, protocol="loo"))
    assert p.history_[0]["ndcg@100"] == aprnb.evaluate(p, train, test, k=100,
                                                       protocol="loo")["ndcg@100"]
    with pytest.raises(TypeError, match="nothing to warm-start"):
        aprnb.ItemPop().fit(train, init=p)
