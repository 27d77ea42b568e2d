"""evaluate(): bad arguments, properties of the metrics, worker shutdown.

Every bad call raises ``ValueError`` or ``TypeError`` naming the argument and
leaves the model and the matrices as they were. The engine against brute force is
in ``tests/test_evaluation.py``.
"""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import aprnb
from aprnb import APR, BPR, ItemPop
from aprnb import data as D
from checks import assert_unchanged, fit_fast, interactions, snapshot


# -- bad arguments -----------------------------------------------------------------------------
def _bad_evaluate_cases(model, train, test):
    neg = np.tile(np.arange(5), (30, 1))
    P, Q = model.user_factors_, model.item_factors_
    return [
        (dict(model=BPR()), ValueError, "not fitted"),
        (dict(model=APR()), ValueError, "not fitted"),
        (dict(model=ItemPop()), ValueError, "not fitted"),
        (dict(model=None), TypeError, "fitted aprnb model"),
        (dict(model="model.npz"), TypeError, "fitted aprnb model"),
        (dict(model=(P, Q, P)), TypeError, "fitted aprnb model"),
        (dict(model=(P, Q[:, :2])), ValueError, "different widths"),
        (dict(model=(P.tolist(), Q.tolist())), TypeError, "numpy array"),
        (dict(model=(P.astype(np.int64), Q)), TypeError, "float32 or float64"),
        (dict(model=(P.astype(np.complex128), Q)), TypeError, "float32 or float64"),
        (dict(model=(P[:, :, None], Q)), ValueError, "2-D"),
        (dict(model=(np.full_like(P, np.nan), Q)), ValueError, "NaN"),
        (dict(k=0), ValueError, "k must be"),
        (dict(k=-1), ValueError, "k must be"),
        (dict(k=[]), ValueError, "k must not be empty"),
        (dict(k=1.5), TypeError, "k must be"),
        (dict(k=True), TypeError, "k must be"),
        (dict(k=None), TypeError, "k must be"),
        (dict(k="10"), TypeError, "k must be"),
        (dict(k=[5, "a"]), TypeError, "k must be"),
        (dict(protocol="LOO"), ValueError, "protocol must be one of"),
        (dict(protocol="holdout", negatives=neg), ValueError, "would ignore them"),
        (dict(protocol="loo", negatives=neg), ValueError, "would ignore them"),
        (dict(train=train[:20]), ValueError, "train: shape"),
        (dict(test=test[:, :10]), ValueError, "test: shape"),
        (dict(test=test.T), ValueError, "test: shape"),
        (dict(test=-test), ValueError, "negative"),
        (dict(test=[[0, 1]]), TypeError, "test"),
        (dict(train=None), TypeError, "train"),
        (dict(users=[-1]), ValueError, "outside"),
        (dict(users=[30]), ValueError, "outside"),
        (dict(users=[1.5]), TypeError, "users must be"),
        (dict(users=["a"]), TypeError, "users must be"),
        (dict(users=[True, False]), TypeError, "users must be"),
        (dict(users=[[1]]), TypeError, "users must be"),
        (dict(n_threads=0), ValueError, "n_threads"),
        (dict(n_threads=1.5), TypeError, "n_threads"),
        (dict(block_size=0), ValueError, "block_size"),
        (dict(block_size=1.5), ValueError, "block_size"),
        (dict(protocol="sampled"), ValueError, "needs negatives"),
        (dict(protocol="sampled", negatives=neg + 16), ValueError, "outside"),
        (dict(protocol="sampled", negatives=neg - 2), ValueError, "outside"),
        (dict(protocol="sampled", negatives=neg.astype(float)), ValueError, "int array"),
        (dict(protocol="sampled", negatives=neg[:5]), ValueError, "n_users=30"),
        (dict(protocol="sampled", negatives=np.arange(5)), ValueError, "int array"),
        (dict(protocol="sampled", negatives=np.ones((30, 3), bool)), ValueError, "int array"),
    ]


def test_evaluate_bad_inputs_raise_and_change_nothing(split):
    train, test = split
    model = fit_fast(BPR, train)
    snaps = snapshot(model), snapshot(train), snapshot(test)
    for kw, exc, fragment in _bad_evaluate_cases(model, train, test):
        args = dict(model=model, train=train, test=test)
        args.update(kw)
        with pytest.raises(exc, match=fragment):
            aprnb.evaluate(args.pop("model"), args.pop("train"), args.pop("test"), **args)
        assert_unchanged(model, snaps[0])
        assert_unchanged(train, snaps[1])
        assert_unchanged(test, snaps[2])


def test_evaluate_loo_rejects_several_test_items(split, X):
    model = fit_fast(BPR, split[0])
    # X holds the training interactions too: the overlap warning comes first
    with pytest.warns(RuntimeWarning, match="also training interactions"), \
            pytest.raises(ValueError, match="at most one test item per user.*holdout"):
        aprnb.evaluate(model, split[0], X, protocol="loo", check_split=False)


@pytest.mark.parametrize("value", ["no", "False", None])
def test_evaluate_exclude_train_must_be_bool(value, split):
    """exclude_train='no' is truthy; a non-bool must be rejected, not silently used."""
    model = fit_fast(BPR, split[0])
    with pytest.raises(TypeError, match="exclude_train"):
        aprnb.evaluate(model, split[0], split[1], exclude_train=value)


def test_sampled_protocol_validates_block_size():
    rng = np.random.default_rng(0)
    P, Q = rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    train = sp.csr_matrix(np.eye(4, 6))
    test = sp.csr_matrix((np.ones(4), (np.arange(4), np.arange(4) + 1)), shape=(4, 6))
    neg = np.tile(np.arange(2, 5), (4, 1))
    for bad in (0, 1.5, "x"):
        with pytest.raises(ValueError, match="block_size"):
            aprnb.evaluate((P, Q), train, test, protocol="sampled", negatives=neg,
                           block_size=bad)


# -- properties --------------------------------------------------------------------------------
def _finite_factors(n, d, draw):
    values = st.one_of(st.integers(-2, 2).map(float), st.floats(-3, 3, width=32))
    return np.array(draw(st.lists(values, min_size=n * d, max_size=n * d))).reshape(n, d)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), M=interactions(max_users=7, max_items=7),
       d=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]),
       protocol=st.sampled_from(["holdout", "loo", "sampled"]),
       ks=st.lists(st.integers(1, 9), min_size=1, max_size=3))
def test_property_evaluate_metrics_are_probabilities(data, M, d, dtype, protocol, ks):
    n_users, n_items = M.shape
    P = _finite_factors(n_users, d, data.draw).astype(dtype)
    Q = _finite_factors(n_items, d, data.draw).astype(dtype)
    if protocol == "holdout":
        tr, te = D.holdout_split(M, 0.5, random_state=0)
    else:
        tr, te = D.leave_one_out(M, random_state=0)
    negatives = None
    if protocol == "sampled":
        width = data.draw(st.integers(1, 5))
        negatives = np.array(data.draw(st.lists(st.integers(-1, n_items - 1),
                                                min_size=n_users * width,
                                                max_size=n_users * width))
                             ).reshape(n_users, width)
    res = aprnb.evaluate((P, Q), tr, te, k=ks, protocol=protocol, negatives=negatives,
                         n_threads=1, block_size=data.draw(st.integers(1, 4)))
    assert 0 <= res["n_users"] <= n_users
    for key, value in res.items():
        if key == "n_users":
            continue
        if res["n_users"] == 0:
            assert math.isnan(value)
        else:
            assert 0.0 <= value <= 1.0 + 1e-12, (key, value)
    for k in set(ks):
        if protocol == "holdout" and res["n_users"]:
            assert res[f"recall@{k}"] <= res[f"hr@{k}"] + 1e-12
        if protocol != "holdout" and res["n_users"]:
            assert res[f"ndcg@{k}"] <= res[f"hr@{k}"] + 1e-12
