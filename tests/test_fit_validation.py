"""fit(validation=..., validation_k=..., validation_protocol=..., validation_metric=...,
validation_every=..., validation_negatives=...): every test of these keyword arguments.

Kept together because the keywords are being replaced by callbacks (issue 13): this is
the one file to port (plus ``test_fit_validation_under_the_sampled_protocol`` in
``tests/test_evaluation.py`` and the ``validation_k=5000`` case of
``tests/test_hostile.py``).
"""
import numpy as np
import pytest
import scipy.sparse as sp

import aprnb
from aprnb import APR, BPR, evaluate
from checks import assert_same, assert_unchanged, fit_fast, snapshot

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


# -- argument checks ---------------------------------------------------------------------------
def test_fit_validation_checks(split, X):
    train, test = split
    model = fit_fast(BPR, train)
    snap = snapshot(model)
    cases = [
        (dict(validation=test[:5]), ValueError, "validation: shape"),
        (dict(validation=sp.csr_matrix((3, 3))), ValueError, "validation: shape"),
        (dict(validation=-test), ValueError, "negative"),
        (dict(validation=[[0, 1]]), TypeError, "validation"),
        (dict(validation=test, validation_k=0), ValueError, "validation_k"),
        (dict(validation=test, validation_k=[]), ValueError, "validation_k"),
        (dict(validation=test, validation_protocol="sampled"), ValueError,
         "needs validation_negatives"),
        (dict(validation=test, validation_protocol="holdout",
              validation_negatives=np.zeros((train.shape[0], 2), dtype=int)), ValueError,
         "validation_negatives were given with validation_protocol='holdout'"),
        (dict(validation_negatives=np.zeros((train.shape[0], 2), dtype=int)), ValueError,
         "without validation="),
        (dict(validation=test, validation_every=0), ValueError, "validation_every"),
        (dict(validation=test, validation_every=True), TypeError, "validation_every"),
        (dict(validation=X, validation_protocol="loo"), ValueError, "at most one test item"),
        (dict(callback=5), TypeError, "callback"),
    ]
    for kw, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            model.fit(train, **kw)
        assert_unchanged(model, snap)


# The metric name is known up front: a metric that the validation protocol does not
# produce (validation_k=20: ndcg@10 is not computed) is an error before any epoch, not a
# KeyError after one.
@pytest.mark.parametrize("metric,protocol,exc", [
    ("bogus", "loo", ValueError), ("recall@20", "loo", ValueError),
    (5, "loo", (ValueError, TypeError)),
    ("ndgc@20", "holdout", ValueError), ("auc", "holdout", ValueError),
    ("ndcg@10", "holdout", ValueError)])
def test_unknown_validation_metric_rejected_before_training(metric, protocol, exc, split):
    train, test = split
    model = fit_fast(BPR, train)
    snap = snapshot(model)
    epochs_run = []
    with pytest.raises(exc, match="validation_metric"):
        model.fit(train, validation=test, validation_k=20, validation_protocol=protocol,
                  validation_metric=metric, callback=lambda e, s: epochs_run.append(e))
    assert epochs_run == []
    assert_unchanged(model, snap)


# -- the metric in history_ --------------------------------------------------------------------
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
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_validation_history_survives_save_and_load(name, dtype, small_synthetic, tmp_path):
    train, val = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    model = make(name, dtype=dtype).fit(train, validation=val, validation_k=[5],
                                        validation_protocol="loo")
    assert all("ndcg@5" in h for h in model.history_)
    model.save(tmp_path / "model.npz")
    loaded = aprnb.load(tmp_path / "model.npz")
    assert_same(loaded.history_, model.history_, "history_")
    assert_same(loaded.user_factors_, model.user_factors_, "user_factors_")
