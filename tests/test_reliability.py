"""Reliability: every bad input gets a clear error, nothing is lost, runs are reproducible.

Each bad call must raise ``ValueError`` or ``TypeError`` with a message naming the
offending input (the ``match`` fragments below), and must leave every model, input
matrix and file exactly as it was: fitted models are snapshotted before the call and
compared bitwise afterwards, files by content hash, folders by listing.

Also covered: training faults (divergence, ``KeyboardInterrupt`` from the callback),
atomic saves, hostile model files, degenerate data, bitwise determinism with one
thread, and hypothesis properties of the loaders, splitters and metrics.
"""
import copy
import gc
import hashlib
import inspect
import math
import os
import pickle
import tempfile
import threading
import time
import warnings
import weakref
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import aprnb
from aprnb import APR, BPR, DivergenceError, ItemPop
from aprnb import data as D

FAST = dict(factors=4, epochs=2, n_threads=1, random_state=0, show_progress=False)
FACTOR_MODELS = (BPR, APR)
OPTIMIZERS = ("sgd", "adagrad")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _assert_same(a, b, where):
    """Bitwise/structural equality of two snapshotted values."""
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray), f"{where}: was an array, now {type(a).__name__}"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: dtype/shape changed"
        assert a.tobytes() == b.tobytes(), f"{where}: values changed"
    elif sp.issparse(b):
        assert sp.issparse(a) and a.format == b.format and a.shape == b.shape, where
        for attr in ("data", "indices", "indptr", "row", "col"):
            if hasattr(b, attr):
                _assert_same(getattr(a, attr), getattr(b, attr), f"{where}.{attr}")
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: length/type changed"
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{k}]")
    elif isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys changed"
        for k in b:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, float) and math.isnan(b):
        assert isinstance(a, float) and math.isnan(a), where
    elif isinstance(b, np.random.Generator):
        assert a is not None
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def snapshot(obj):
    """Deep copy of a model's ``__dict__`` (or of a matrix) for :func:`assert_unchanged`."""
    if sp.issparse(obj) or isinstance(obj, np.ndarray):
        return copy.deepcopy(obj)     # .copy() of a sparse matrix may change index dtypes
    return copy.deepcopy(dict(vars(obj)))


def assert_unchanged(obj, snap):
    if sp.issparse(obj) or isinstance(obj, np.ndarray):
        _assert_same(obj, snap, "matrix")
        return
    _assert_same(dict(vars(obj)), snap, type(obj).__name__)


def learned_attributes(model):
    return sorted(k for k in vars(model) if k.endswith("_"))


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def listing(folder):
    return sorted(os.listdir(folder))


def message(excinfo):
    return str(excinfo.value)


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def X():
    """30 users x 20 items with planted structure."""
    return D.make_synthetic(n_users=30, n_items=20, n_groups=2, mean_degree=4, random_state=0)


@pytest.fixture(scope="module")
def split(X):
    return D.leave_one_out(X, random_state=0)


def _fit(cls, train, **kw):
    if cls is ItemPop:
        return ItemPop().fit(train)
    params = dict(FAST, optimizer="adagrad")
    params.update(kw)
    return cls(**params).fit(train)


@pytest.fixture(params=[BPR, APR, ItemPop], ids=lambda c: c.__name__)
def fitted(request, split):
    """A freshly fitted model of each class (Adagrad, so optimizer state exists)."""
    return _fit(request.param, split[0])


@pytest.fixture
def bpr(split):
    return _fit(BPR, split[0])


# ---------------------------------------------------------------------------------------
# model parameters (constructors only store them; fit validates)
# ---------------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
BAD_PARAMS = [
    ("factors", 0, ValueError), ("factors", -3, ValueError), ("factors", True, TypeError),
    ("factors", 2.0, TypeError), ("factors", "4", TypeError), ("factors", None, TypeError),
    ("epochs", -1, ValueError), ("epochs", 1.5, TypeError), ("epochs", True, TypeError),
    ("learning_rate", 0, ValueError), ("learning_rate", -0.1, ValueError),
    ("learning_rate", NAN, ValueError), ("learning_rate", INF, ValueError),
    ("learning_rate", "0.1", TypeError), ("learning_rate", None, TypeError),
    ("learning_rate", 1j, TypeError),
    ("reg", -1.0, ValueError), ("reg", NAN, ValueError),
    ("optimizer", "adam", ValueError), ("optimizer", None, ValueError),
    ("optimizer", "SGD", ValueError),
    ("init_std", -1.0, ValueError), ("init_std", NAN, ValueError),
    ("n_threads", 0, ValueError), ("n_threads", -1, ValueError),
    ("n_threads", 10**6, ValueError), ("n_threads", 1.0, TypeError),
    ("n_threads", True, TypeError), ("n_threads", "2", TypeError),
    ("random_state", -5, ValueError), ("random_state", 1.5, TypeError),
    ("random_state", "seed", TypeError), ("random_state", True, TypeError),
    ("dtype", "int32", TypeError), ("dtype", np.int32, TypeError),
    ("dtype", np.float16, TypeError), ("dtype", complex, TypeError),
    ("dtype", "banana", TypeError), ("dtype", object, TypeError),
    ("show_progress", 1, TypeError), ("show_progress", "no", TypeError),
    ("initial_accumulator", 0.0, ValueError), ("initial_accumulator", -1.0, ValueError),
    ("initial_accumulator", NAN, ValueError),
    ("batch_size", 0, ValueError), ("batch_size", True, TypeError),
    ("batch_size", 2.5, TypeError),
    ("reset_optimizer", 1, TypeError), ("reset_optimizer", None, TypeError),
]
BAD_APR_PARAMS = [
    ("eps", 0.0, ValueError), ("eps", -1.0, ValueError), ("eps", NAN, ValueError),
    ("eps", INF, ValueError), ("eps", "1", TypeError), ("eps", None, TypeError),
    ("reg_adv", -1.0, ValueError), ("reg_adv", NAN, ValueError),
    ("noise", "gauss", ValueError), ("noise", None, ValueError),
    ("bpr_epochs", -1, ValueError), ("bpr_epochs", True, TypeError),
    ("bpr_epochs", 1.0, TypeError),
]


def _param_id(p):
    return f"{p[0]}={p[1]!r}"


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name,value,exc", BAD_PARAMS, ids=[_param_id(p) for p in BAD_PARAMS])
def test_bad_parameter_rejected_by_fit_and_fitted_model_kept(cls, name, value, exc, split):
    model = _fit(cls, split[0])
    snap_train = snapshot(split[0])
    model.set_params(**{name: value})
    snap = snapshot(model)
    with pytest.raises(exc, match=name):
        model.fit(split[0])
    assert_unchanged(model, snap)
    assert_unchanged(split[0], snap_train)


@pytest.mark.parametrize("name,value,exc", BAD_APR_PARAMS,
                         ids=[_param_id(p) for p in BAD_APR_PARAMS])
def test_bad_apr_parameter_rejected_and_fitted_model_kept(name, value, exc, split):
    model = _fit(APR, split[0])
    model.set_params(**{name: value})
    snap = snapshot(model)
    with pytest.raises(exc, match=name):
        model.fit(split[0])
    assert_unchanged(model, snap)


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
def test_bad_parameter_on_fresh_model_sets_no_learned_attributes(cls, split):
    model = cls(factors=0, show_progress=False)
    with pytest.raises(ValueError, match="factors must be an integer >= 1"):
        model.fit(split[0])
    assert learned_attributes(model) == []


@pytest.mark.parametrize("dtype", ["int32", np.int64, np.float16, "banana"])
def test_itempop_bad_dtype(dtype, split):
    model = ItemPop(dtype=dtype)
    with pytest.raises(TypeError, match="dtype must be numpy.float32 or numpy.float64"):
        model.fit(split[0])
    assert learned_attributes(model) == []


def test_set_params_unknown_name_lists_valid_ones(bpr):
    snap = snapshot(bpr)
    with pytest.raises(ValueError, match="no parameter 'learningrate'.*learning_rate"):
        bpr.set_params(learningrate=0.1)
    assert_unchanged(bpr, snap)


def test_numpy_scalar_parameters_are_accepted(split):
    m = BPR(factors=np.int64(4), epochs=np.int32(2), learning_rate=np.float64(0.05),
            n_threads=np.int64(1), random_state=np.int64(0), show_progress=False)
    m.fit(split[0])
    assert m.user_factors_.shape == (30, 4) and len(m.history_) == 2


# ---------------------------------------------------------------------------------------
# interaction matrices passed to fit (and every other entry point via check_interactions)
# ---------------------------------------------------------------------------------------
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
    ("only explicit zeros", lambda: sp.csr_matrix(
        (np.zeros(2), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2)), ValueError,
     "no interactions"),
]


@pytest.mark.parametrize("label,make,exc,fragment", BAD_TRAIN, ids=[b[0] for b in BAD_TRAIN])
def test_bad_train_matrix_rejected_and_model_kept(fitted, label, make, exc, fragment):
    bad = make()
    snap = snapshot(fitted)
    with pytest.raises(exc, match=fragment) as ei:
        fitted.fit(bad)
    assert "train" in message(ei)
    assert_unchanged(fitted, snap)


def test_fit_rejects_complex_dense_array(split):
    """A complex dense array must not be silently cast to its real part."""
    dense = split[0].toarray().astype(np.complex128)
    dense[0, 0] = 1j
    model = BPR(**FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # numpy's ComplexWarning on the silent cast
        with pytest.raises(TypeError, match="complex|real"):
            model.fit(dense)
    assert learned_attributes(model) == []


def test_fit_rejects_timedelta_array():
    """timedelta64 passes np.issubdtype(..., np.number) but is not an interaction count."""
    model = BPR(**FAST)
    with pytest.raises(TypeError, match="timedelta|numeric"):
        model.fit(np.array([[1, 0], [0, 1]], dtype="m8[s]"))
    assert learned_attributes(model) == []


# ---------------------------------------------------------------------------------------
# other fit arguments: validation, init, callback
# ---------------------------------------------------------------------------------------
def test_fit_validation_checks(split, X):
    train, test = split
    model = _fit(BPR, train)
    snap = snapshot(model)
    cases = [
        (dict(validation=test[:5]), ValueError, "validation: shape"),
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


@pytest.mark.parametrize("metric", ["bogus", "recall@20", 5])
def test_fit_unknown_validation_metric_rejected_before_training(metric, split):
    """The metric name is known up front; it must not fail with KeyError after epoch 1."""
    train, test = split
    model = _fit(BPR, train)
    snap = snapshot(model)
    epochs_run = []
    with pytest.raises((ValueError, TypeError), match="validation_metric"):
        model.fit(train, validation=test, validation_protocol="loo", validation_metric=metric,
                  callback=lambda e, s: epochs_run.append(e))
    assert epochs_run == []
    assert_unchanged(model, snap)


def test_fit_bad_init_rejected_and_init_untouched(split):
    train = split[0]
    source = _fit(BPR, train)
    model = _fit(BPR, train, random_state=1)
    snaps = snapshot(source), snapshot(model)
    P, Q = source.user_factors_, source.item_factors_
    cases = [
        ((P[:, :3], Q[:, :3]), ValueError, "init factors have shapes"),
        ((P[:10], Q), ValueError, "init factors have shapes"),
        ((P.tolist(), Q.tolist()), TypeError, "numpy array"),
        ((P.astype(np.int64), Q.astype(np.int64)), TypeError, "float32 or float64"),
        ((np.full_like(P, np.nan), Q), ValueError, "NaN"),
        ((P, Q, P), TypeError, "init must be"),
        ([P, Q], TypeError, "init must be"),
        ("model.npz", TypeError, "init must be"),
        (BPR(), ValueError, "not fitted"),
        (ItemPop().fit(train), ValueError, "init factors have shapes"),
    ]
    for init, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            model.fit(train, init=init)
        assert_unchanged(source, snaps[0])
        assert_unchanged(model, snaps[1])


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
def test_successful_warm_start_never_modifies_init(cls, split):
    source = _fit(BPR, split[0])
    snap = snapshot(source)
    cls(**dict(FAST, optimizer="adagrad")).fit(split[0], init=source)
    assert_unchanged(source, snap)


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------
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
        (dict(n_threads=10**6), ValueError, "n_threads"),
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
    model = _fit(BPR, train)
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
    model = _fit(BPR, split[0])
    with pytest.raises(ValueError, match="at most one test item per user.*holdout"):
        aprnb.evaluate(model, split[0], X, protocol="loo", check_split=False)


@pytest.mark.parametrize("value", ["no", "False", None])
def test_evaluate_exclude_train_must_be_bool(value, split):
    """exclude_train='no' is truthy; a non-bool must be rejected, not silently used."""
    model = _fit(BPR, split[0])
    with pytest.raises(TypeError, match="exclude_train"):
        aprnb.evaluate(model, split[0], split[1], exclude_train=value)


# ---------------------------------------------------------------------------------------
# recommend and score
# ---------------------------------------------------------------------------------------
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
def test_recommend_rejects_several_cutoffs(k, bpr):
    """recommend returns one top-k list; a collection of k must not silently use min(k)."""
    with pytest.raises(TypeError, match="single positive int"):
        bpr.recommend(0, k=k)


def test_recommend_absurd_k_is_a_clear_error_not_memoryerror(bpr):
    with pytest.raises(ValueError, match=r"\bk\b"):
        bpr.recommend(0, k=10**12)


def test_recommend_unfitted_and_score_unfitted():
    for model in (BPR(), APR(), ItemPop()):
        with pytest.raises(aprnb.NotFittedError, match="not fitted yet.*fit"):
            model.recommend(0)
        with pytest.raises(ValueError, match="not fitted yet"):
            model.score(0)
        assert learned_attributes(model) == []


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
def test_score_bad_items_message_names_items(items, bpr):
    """The error for a bad ``items`` argument must talk about items, not users."""
    with pytest.raises(TypeError) as ei:
        bpr.score(0, items=items)
    assert "items" in message(ei) and "users must be" not in message(ei)


# ---------------------------------------------------------------------------------------
# perturb and robustness
# ---------------------------------------------------------------------------------------
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
    model = _fit(APR, split[0])
    snaps = snapshot(model), snapshot(split[0])
    args = dict(eps=0.5)
    args.update(kw)
    with pytest.raises(exc, match=fragment):
        aprnb.perturb(model, split[0], args.pop("eps"), **args)
    assert_unchanged(model, snaps[0])
    assert_unchanged(split[0], snaps[1])


def test_perturb_bad_model_and_train(split):
    train = split[0]
    model = _fit(BPR, train)
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
    model = _fit(APR, split[0])
    snap = snapshot(model)
    P, Q = aprnb.perturb(model, split[0], 0.5, kind=kind, random_state=0, steps=2)
    assert_unchanged(model, snap)
    assert P.dtype == model.user_factors_.dtype and np.all(np.isfinite(P))
    assert not np.array_equal(P, model.user_factors_)


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
    model = _fit(BPR, split[0])
    snap = snapshot(model)
    with pytest.raises(exc, match=fragment):
        args = dict(eps=0.5, k=5)
        args.update(kw)
        aprnb.robustness(model, split[0], split[1], **args)
    assert_unchanged(model, snap)


def test_robustness_shape_mismatch_and_unfitted(split):
    train, test = split
    model = _fit(BPR, train)
    with pytest.raises(ValueError, match="test: shape"):
        aprnb.robustness(model, train, test[:5], eps=0.5, k=5)
    with pytest.raises(ValueError, match="train: shape"):
        aprnb.robustness(model, train[:, :5], test, eps=0.5, k=5)
    with pytest.raises(ValueError, match="not fitted"):
        aprnb.robustness(BPR(), train, test, eps=0.5, k=5)


@pytest.mark.parametrize("kw", [dict(eps=[]), dict(kinds=[])], ids=["eps=[]", "kinds=[]"])
def test_robustness_rejects_empty_grids(kw, split):
    """An empty eps or kinds list silently yields a report with only the clean row."""
    model = _fit(BPR, split[0])
    name = next(iter(kw))
    args = dict(eps=0.5, k=5)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        aprnb.robustness(model, split[0], split[1], **args)


@pytest.mark.parametrize("kinds", [None, 5], ids=["None", "int"])
def test_robustness_bad_kinds_type_names_the_argument(kinds, split):
    model = _fit(BPR, split[0])
    with pytest.raises(TypeError, match="kinds"):
        aprnb.robustness(model, split[0], split[1], eps=0.5, kinds=kinds, k=5)


def test_robustness_sampled_protocol_error_is_actionable(split):
    """robustness() has no ``negatives`` argument, so its error must not ask for one."""
    model = _fit(BPR, split[0])
    with pytest.raises(ValueError, match="protocol") as ei:
        aprnb.robustness(model, split[0], split[1], eps=0.5, protocol="sampled", k=5)
    accepts_negatives = "negatives" in inspect.signature(aprnb.robustness).parameters
    assert accepts_negatives or "negatives=" not in message(ei)


# ---------------------------------------------------------------------------------------
# splitters and the synthetic generator
# ---------------------------------------------------------------------------------------
SPLITTERS = {
    "leave_one_out": lambda data, **kw: D.leave_one_out(data, **kw),
    "holdout_split": lambda data, **kw: D.holdout_split(data, **kw),
    "validation_split": lambda data, **kw: D.validation_split(data, **kw),
}


@pytest.mark.parametrize("name", sorted(SPLITTERS))
def test_splitters_bad_inputs(name, X):
    f = SPLITTERS[name]
    snap = snapshot(X)
    cases = [
        ((None,), {}, TypeError, "data: got NoneType"),
        (([(0, 1)],), {}, TypeError, "data: got list"),
        (("data.csv",), {}, TypeError, "data: got str"),
        ((-X,), {}, ValueError, "negative"),
        ((np.ones((2, 2, 2)),), {}, ValueError, "2-D"),
        ((np.zeros((3, 3)),), {}, ValueError, "no interactions"),
        ((X,), dict(random_state=-5), ValueError, "random_state"),
        ((X,), dict(random_state=1.5), TypeError, "random_state"),
    ]
    for args, kw, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            f(*args, **kw)
    assert_unchanged(X, snap)


@pytest.mark.parametrize("tf,exc", [(0, ValueError), (1, ValueError), (-0.1, ValueError),
                                    (1.5, ValueError), (NAN, ValueError), ("0.2", TypeError),
                                    (True, TypeError), (None, TypeError)])
def test_holdout_test_fraction_checked(tf, exc, X):
    with pytest.raises(exc, match="test_fraction"):
        D.holdout_split(X, test_fraction=tf)
    with pytest.raises(exc, match="test_fraction"):
        D.validation_split(X, protocol="holdout", test_fraction=tf)


def test_validation_split_and_merge_bad_inputs(X):
    with pytest.raises(ValueError, match="protocol must be 'loo' or 'holdout'"):
        D.validation_split(X, protocol="sampled")
    with pytest.raises(ValueError, match="at least one matrix"):
        D.merge()
    with pytest.raises(ValueError, match="matrix 1: shape"):
        D.merge(X, X[:5])
    with pytest.raises(ValueError, match="matrix 1: contains negative"):
        D.merge(X, -X)


@pytest.mark.parametrize("kw,exc,fragment", [
    (dict(n_users=0), ValueError, "n_users"), (dict(n_items=1), ValueError, "n_items"),
    (dict(n_groups=0), ValueError, "n_groups"), (dict(n_groups=50, n_items=10), ValueError,
                                                 "n_groups"),
    (dict(mean_degree=0), ValueError, "mean_degree"),
    (dict(group_affinity=1.5), ValueError, "group_affinity"),
    (dict(group_affinity=NAN), ValueError, "group_affinity"),
    (dict(popularity_exponent=-1), ValueError, "popularity_exponent"),
    (dict(random_state=-1), ValueError, "random_state"),
    (dict(n_users=True), TypeError, "n_users"), (dict(n_users=2.0), TypeError, "n_users"),
])
def test_make_synthetic_bad_arguments(kw, exc, fragment):
    with pytest.raises(exc, match=fragment):
        D.make_synthetic(**kw)


# ---------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------
def _write(path, text, mode="w"):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
        fh.write(text)
    return str(path)


@pytest.mark.parametrize("content,fragment", [
    ("", "no interactions found"),
    ("# only a comment\n", "no interactions found"),
    ("u1\n", "line 1: expected 'user, item"),
    ("u1,i1\nu1,i1,2,3,4\n", "line 2: expected 'user, item"),
    ("u1,i1,1\nu1,i1,abc\n", "line 2: value/timestamp"),
    ("u1,i1,1,2\nu1,i1,1,abc\n", "line 2: value/timestamp"),
    ("u1,i1,nan\n", "line 1: value 'nan' is not finite"),
    ("u1,i1,inf\n", "line 1: value 'inf' is not finite"),
    (",i1\n", "line 1: expected"),
    ("u1,,1\n", "line 1: expected"),
    ("\x00\x01garbage\n", "line 1: expected"),
])
def test_load_delimited_malformed_lines(tmp_path, content, fragment):
    path = _write(tmp_path / "a.csv", content)
    before = digest(path)
    with pytest.raises(ValueError, match=fragment) as ei:
        D.load_delimited(path)
    assert path in message(ei)
    assert digest(path) == before


def test_load_delimited_one_based_errors(tmp_path):
    path = _write(tmp_path / "a.csv", "0,2\n3,4\n")
    with pytest.raises(ValueError, match="line 1: user id 0 is below the first id 1"):
        D.load_delimited(path, one_based=True)
    path = _write(tmp_path / "b.csv", "a,2\n3,4\n")
    with pytest.raises(ValueError, match="not an integer; pass one_based=None"):
        D.load_delimited(path, one_based=False, header=False)
    path = _write(tmp_path / "c.csv", "1,2\n-3,4\n")
    with pytest.raises(ValueError, match="line 2: user id -3 is below"):
        D.load_delimited(path, one_based=False)
    with pytest.raises(TypeError, match="one_based must be None, True or False"):
        D.load_interactions(path, one_based="yes")


def test_loader_path_errors(tmp_path):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist; check the path"):
        D.load_delimited(missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_delimited(_write(tmp_path / "a.csv", "u,i\n"), missing)
    for bad in (None, 5, 1.5):
        with pytest.raises(TypeError, match="path"):
            D.load_delimited(bad)
        with pytest.raises(TypeError, match="path"):
            D.load_ncf(bad)
        with pytest.raises(TypeError, match="path"):
            D.load_lightgcn(bad)
    with pytest.raises(ValueError, match="paths is empty"):
        D.load_interactions([])
    with pytest.raises(FileNotFoundError, match="nofolder does not exist; pass the folder "
                                                "holding train.txt"):
        D.load_lightgcn(tmp_path / "nofolder")
    with pytest.raises(ValueError, match="not a directory; pass the folder holding train.txt"):
        D.load_lightgcn(_write(tmp_path / "file.txt", "0 1\n"))
    with pytest.raises(FileNotFoundError, match="train.txt does not exist"):
        D.load_lightgcn(tmp_path)
    with pytest.raises(FileNotFoundError, match="train.rating does not exist"):
        D.load_ncf(tmp_path / "ml")
    with pytest.raises(FileNotFoundError, match="nolastfm does not exist"):
        D.load_lastfm(tmp_path / "nolastfm")


def test_load_delimited_folder_instead_of_file_says_so(tmp_path):
    """'no such file' is wrong for a folder that exists; say it is a directory."""
    with pytest.raises(ValueError, match="(?i)director|folder"):
        D.load_delimited(tmp_path)


@pytest.mark.parametrize("bad", [None, 5], ids=["None", "int"])
def test_load_lastfm_bad_type_names_the_argument(bad):
    with pytest.raises(TypeError, match="folder|path"):
        D.load_lastfm(bad)


def test_load_delimited_bad_sep_type_names_the_argument(tmp_path):
    path = _write(tmp_path / "a.csv", "1,2\n3,4\n")
    with pytest.raises(TypeError, match="sep"):
        D.load_delimited(path, sep=5)


def test_load_delimited_invalid_utf8_names_the_file(tmp_path):
    path = _write(tmp_path / "a.csv", b"u1,i1\n\xff\xfe,i2\n", mode="wb")
    with pytest.raises(ValueError) as ei:
        D.load_delimited(path)
    assert path in message(ei), message(ei)


def test_load_delimited_keeps_distinct_numeric_looking_ids(tmp_path):
    """'007' and '7' (or '+5' and '5') are different users; merging them loses data."""
    for a, b in [("007", "7"), ("+5", "5"), ("1_000", "1000")]:
        path = _write(tmp_path / "a.csv", f"{a},x\n{b},y\n")
        ds = D.load_delimited(path)
        assert ds.n_users == 2, (a, b, ds.user_ids)


def test_load_delimited_accepts_long_numeric_ids(tmp_path):
    """A 20-digit numeric id overflows int64; it must still load (or give a ValueError)."""
    path = _write(tmp_path / "a.csv", "12345678901234567890,x\n1,y\n1,x\n")
    ds = D.load_delimited(path)
    assert ds.n_users == 2 and ds.train.nnz == 3


def test_load_delimited_strips_utf8_bom(tmp_path):
    path = _write(tmp_path / "a.csv", b"\xef\xbb\xbfu1,a\nu2,b\n", mode="wb")
    ds = D.load_delimited(path)
    assert sorted(map(str, ds.user_ids)) == ["u1", "u2"]


@pytest.mark.parametrize("train,test,fragment", [
    ("0 1 2\n1 x\n", "0 3\n", "train.txt, line 2: item id 'x' is not an integer"),
    ("0 1 -2\n", "0 3\n", "line 1: item id -2 is negative"),
    ("0 1.5\n", "0 3\n", "line 1: item id '1.5' is not an integer"),
    ("-1 2\n", "0 3\n", "line 1: user id -1 is negative"),
    ("", "", "hold no interactions"),
    ("0\n1\n", "", "hold no interactions"),
    ("0 1\n", "0 x\n", "test.txt, line 1"),
])
def test_load_lightgcn_malformed(tmp_path, train, test, fragment):
    _write(tmp_path / "train.txt", train)
    _write(tmp_path / "test.txt", test)
    with pytest.raises(ValueError, match=fragment):
        D.load_lightgcn(tmp_path)


@pytest.mark.parametrize("negative,fragment", [
    ("(0,2)\t1\tx\n", "negative item id 'x' is not an integer"),
    ("0,2\t1\n", "expected '\\(user,item\\)'"),
    ("(0,2)\t-1\n", "negative item id -1 is negative"),
    ("(a,b)\t1\n", "user 'a' is not in the train or test file"),
])
def test_load_ncf_malformed(tmp_path, negative, fragment):
    prefix = tmp_path / "ml"
    _write(f"{prefix}.train.rating", "0\t1\t5\t100\n1\t2\t5\t100\n")
    _write(f"{prefix}.test.rating", "0\t2\t5\t100\n")
    _write(f"{prefix}.test.negative", negative)
    with pytest.raises(ValueError, match=fragment):
        D.load_ncf(prefix)
    _write(f"{prefix}.train.rating", "0 1 5 100\n")
    with pytest.raises(ValueError, match="line 1: expected 'user<TAB>item"):
        D.load_ncf(prefix)


# ---------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------
def test_save_bad_paths_leave_no_files(fitted, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    before = listing(tmp_path), listing(target)
    snap = snapshot(fitted)
    cases = [(None, TypeError, "path must be a str"), (5, TypeError, "path must be a str"),
             ("", ValueError, "path is empty"),
             (str(tmp_path / "nofolder" / "m.npz"), FileNotFoundError,
              "does not exist; create it")]
    for path, exc, fragment in cases:
        with pytest.raises(exc, match=fragment):
            fitted.save(path)
        assert (listing(tmp_path), listing(target)) == before
    assert_unchanged(fitted, snap)


def test_save_onto_a_directory_is_a_clear_error(bpr, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    before = listing(tmp_path)
    with pytest.raises(ValueError, match="(?i)director|folder"):
        bpr.save(target)
    assert listing(tmp_path) == before and target.is_dir()


def test_save_unfitted(tmp_path):
    for model in (BPR(), APR(), ItemPop()):
        with pytest.raises(ValueError, match="not fitted"):
            model.save(tmp_path / "m.npz")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["OSError", "KeyboardInterrupt"])
def test_save_is_atomic_when_writing_crashes(error, tmp_path, monkeypatch, split):
    old = _fit(BPR, split[0])
    path = tmp_path / "model.npz"
    old.save(path)
    before_hash, before_list = digest(path), listing(tmp_path)
    new = _fit(APR, split[0], random_state=1)
    real_savez = np.savez

    def crashing_savez(file, *args, **kwds):
        real_savez(file, *args, **kwds)   # a complete payload lands in the temp file ...
        if hasattr(file, "write"):
            file.write(b"\0" * 64)        # ... plus some junk ...
        raise error                       # ... then the process "dies"

    monkeypatch.setattr(np, "savez", crashing_savez)
    with pytest.raises(type(error)):
        new.save(path)
    monkeypatch.undo()
    assert digest(path) == before_hash
    assert listing(tmp_path) == before_list
    loaded = aprnb.load(path)
    assert type(loaded) is BPR
    np.testing.assert_array_equal(loaded.user_factors_, old.user_factors_)


def test_save_overwrites_existing_file_completely(tmp_path, split):
    path = tmp_path / "m.npz"
    _fit(APR, split[0]).save(path)
    model = _fit(ItemPop, split[0])
    model.save(path)
    loaded = aprnb.load(path)
    assert type(loaded) is ItemPop
    np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
    assert listing(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("name,value", [("factors", np.int64(4)), ("epochs", np.int32(2)),
                                        ("learning_rate", np.float32(0.05)),
                                        ("random_state", np.int64(3))])
def test_save_load_round_trip_with_numpy_scalar_params(name, value, tmp_path, split):
    """fit accepts numpy scalars (e.g. from np.arange grids); save must too, losslessly."""
    model = BPR(**dict(FAST, **{name: value})).fit(split[0])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = aprnb.load(path)
    assert loaded.get_params()[name] == value
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)


def test_save_load_round_trip_is_bitwise(fitted, tmp_path):
    path = tmp_path / "m.npz"
    fitted.save(path)
    loaded = aprnb.load(path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    _assert_same(loaded.user_factors_, fitted.user_factors_, "user_factors_")
    _assert_same(loaded.item_factors_, fitted.item_factors_, "item_factors_")
    _assert_same(loaded.history_, fitted.history_, "history_")
    if getattr(fitted, "optimizer_state_", None) is not None:
        _assert_same(tuple(loaded.optimizer_state_), tuple(fitted.optimizer_state_), "state")


# ---------------------------------------------------------------------------------------
# load: hostile and broken files
# ---------------------------------------------------------------------------------------
@pytest.fixture
def model_file(tmp_path, split):
    path = tmp_path / "good.npz"
    _fit(BPR, split[0]).save(path)
    return path


def _variant(src, dst, **changes):
    """Copy of the model file ``src`` with some arrays replaced (None = removed)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k, None)
        else:
            arrays[k] = v
    np.savez(dst, **arrays)   # allow_pickle defaults to True here: object arrays pickle
    return dst


def _assert_load_rejected(path, fragment=None, exc=ValueError):
    before = digest(path)
    with pytest.raises(exc, match=fragment) as ei:
        aprnb.load(path)
    assert digest(path) == before
    return message(ei)


def test_load_path_errors(tmp_path):
    with pytest.raises(TypeError, match="path must be a str"):
        aprnb.load(None)
    with pytest.raises(ValueError, match="path is empty"):
        aprnb.load("")
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        aprnb.load(tmp_path / "missing.npz")


def test_load_folder_instead_of_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="(?i)director|folder"):
        aprnb.load(tmp_path)


def test_load_truncated_garbage_and_empty_files(model_file, tmp_path):
    raw = model_file.read_bytes()
    cases = {"truncated.npz": raw[: len(raw) // 2], "head.npz": raw[:10],
             "garbage.npz": bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)),
             "empty.npz": b""}
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        msg = _assert_load_rejected(path, "not a readable aprnb model file|not an aprnb model")
        assert str(path) in msg


def test_load_errors_never_suggest_unpickling(tmp_path):
    """For garbage bytes numpy suggests allow_pickle=...; aprnb must not pass that on."""
    path = tmp_path / "garbage.npz"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, np.uint8)))
    msg = _assert_load_rejected(path)
    assert "allow_pickle" not in msg and "pickle.load" not in msg, msg


def test_load_npy_file_is_rejected_with_valueerror(tmp_path):
    path = tmp_path / "factors.npy"
    np.save(path, np.zeros((3, 2), np.float32))
    _assert_load_rejected(path, "aprnb model")


def test_load_npz_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.arange(3))
    _assert_load_rejected(path, "not an aprnb model file")
    path = tmp_path / "zip.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _assert_load_rejected(path, "not an aprnb model file")


@pytest.mark.parametrize("changes,fragment", [
    (dict(format_version=np.array(99)), "format version 99 is newer.*upgrade aprnb"),
    (dict(item_factors=np.zeros((20, 3), np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 3), np.float32),
          item_factors=np.zeros((20, 3), np.float32)), "factors=4 but arrays have width 3"),
    (dict(user_factors=np.zeros(30, np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 4, 1), np.float32)), "inconsistent factor arrays"),
    (dict(user_factors=np.zeros((30, 4), np.int32)), "inconsistent factor arrays"),
    (dict(user_factors=np.full((30, 4), np.nan, np.float32)), "NaN or inf"),
    (dict(opt_users=np.zeros((3, 4), np.float32)), "optimizer state shapes"),
    (dict(format=np.array("something-else")), "not an aprnb model file"),
    (dict(format=None), "not an aprnb model file"),
    (dict(user_factors=None), "not an aprnb model file"),
    (dict(**{"class": np.array("Evil")}), "unknown model class 'Evil'"),
    (dict(params=np.array("{not json")), "corrupted parameter block"),
    (dict(params=np.array("[1, 2]")), "parameters do not match"),
    (dict(params=np.array('{"factors": 4, "wat": 1}')), "parameters do not match"),
    (dict(history=np.array("{bad")), "corrupted"),
], ids=["future version", "width mismatch", "params width mismatch", "1-D", "3-D",
        "int factors", "NaN factors", "optimizer shape", "wrong marker", "no marker",
        "no user factors", "unknown class", "bad params JSON", "params not a dict",
        "unknown param", "bad history JSON"])
def test_load_rejects_inconsistent_model_files(model_file, tmp_path, changes, fragment):
    path = _variant(model_file, tmp_path / "bad.npz", **changes)
    msg = _assert_load_rejected(path, fragment)
    assert str(path) in msg


@pytest.mark.parametrize("changes", [
    dict(params=np.array('{"factors": 4, "dtype": "banana"}')),
    dict(params=np.array('{"factors": 4, "learning_rate": -1}')),
    dict(params=np.array('{"factors": 4, "optimizer": "adam"}')),
    dict(format_version=np.array("abc")),
    dict(format_version=np.array([1, 2])),
    dict(user_factors=np.zeros((30, 4), np.float16),
         item_factors=np.zeros((20, 4), np.float16)),
    dict(opt_users=np.full((30, 4), np.nan, np.float32)),
], ids=["dtype param", "negative lr param", "unknown optimizer param", "version str",
        "version array", "float16 factors", "NaN accumulators"])
def test_load_rejects_corrupted_fields_with_valueerror_naming_the_file(model_file, tmp_path,
                                                                      changes):
    path = _variant(model_file, tmp_path / "bad.npz", **changes)
    msg = _assert_load_rejected(path)
    assert str(path) in msg, msg


@pytest.mark.parametrize("key", ["user_factors", "params", "extra"])
def test_load_never_unpickles(model_file, tmp_path, key):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    evil = np.empty(1, dtype=object)
    evil[0] = Payload()
    path = _variant(model_file, tmp_path / "evil.npz", **{key: evil})
    if key == "extra":          # a member aprnb does not know is never read
        assert aprnb.load(path).user_factors_.shape[0] > 0
    else:
        _assert_load_rejected(path)
    assert not marker.exists()
    # a raw pickle stream with the same payload
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Payload()))
    _assert_load_rejected(raw)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------
# faults during training
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,optimizer,lr", [
    (BPR, "sgd", 10.0), (BPR, "sgd", 1e6), (BPR, "adagrad", 1e30),
    (APR, "sgd", 10.0), (APR, "sgd", 1e6), (APR, "adagrad", 1e30),
])
def test_divergence_raises_and_keeps_last_good_epoch(cls, optimizer, lr, X):
    params = dict(FAST, epochs=30, learning_rate=lr, optimizer=optimizer)
    model = cls(**params)
    with pytest.raises(DivergenceError) as ei:
        model.fit(X)
    done = len(model.history_)
    msg = message(ei)
    assert f"diverged at epoch {done + 1}" in msg
    assert "smaller learning_rate" in msg
    assert np.all(np.isfinite(model.user_factors_)) and np.all(np.isfinite(model.item_factors_))
    assert all(np.isfinite(h["loss"]) for h in model.history_)
    # the kept state is exactly that of a run stopped after the completed epochs
    ref = cls(**dict(params, epochs=done)).fit(X)
    _assert_same(model.user_factors_, ref.user_factors_, "user_factors_")
    _assert_same(model.item_factors_, ref.item_factors_, "item_factors_")
    if optimizer == "adagrad":
        _assert_same(tuple(model.optimizer_state_), tuple(ref.optimizer_state_), "state")
    # and the model is usable
    model.recommend([0, 1], k=3, exclude=X)


def test_divergence_after_some_epochs_is_covered(X):
    """Guard for the test above: at lr=10 BPR/SGD completes epochs before it diverges."""
    model = BPR(**dict(FAST, epochs=30, learning_rate=10.0, optimizer="sgd"))
    with pytest.raises(DivergenceError):
        model.fit(X)
    assert len(model.history_) >= 1


@pytest.mark.parametrize("cls", FACTOR_MODELS, ids=lambda c: c.__name__)
def test_divergence_in_warm_start_leaves_init_untouched(cls, X):
    source = _fit(BPR, X)
    snap = snapshot(source)
    model = cls(**dict(FAST, epochs=5, learning_rate=1e30, optimizer="adagrad"))
    with pytest.raises(DivergenceError):
        model.fit(X, init=source)
    assert_unchanged(source, snap)
    assert np.all(np.isfinite(model.user_factors_))


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
    _assert_same(model.user_factors_, ref.user_factors_, "user_factors_")
    _assert_same(model.item_factors_, ref.item_factors_, "item_factors_")
    assert [h["loss"] for h in model.history_] == [h["loss"] for h in ref.history_]
    if optimizer == "adagrad":
        _assert_same(tuple(model.optimizer_state_), tuple(ref.optimizer_state_), "state")
    # a consistent fitted model: it recommends, saves and loads
    model.recommend([0], k=3, exclude=X)
    model.save(tmp_path / "m.npz")
    assert len(aprnb.load(tmp_path / "m.npz").history_) == 3


def test_keyboard_interrupt_in_first_epoch_of_a_refit(X):
    """Interrupting a refit before any epoch completes leaves a consistent model."""
    model = _fit(BPR, X)

    def callback(epoch, stats):
        raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning):
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, callback=callback)
    assert len(model.history_) == 1
    assert np.all(np.isfinite(model.user_factors_))
    assert model.user_factors_.shape == (30, 4)


def test_callback_returning_false_stops_early(X):
    model = BPR(**dict(FAST, epochs=5)).fit(X, callback=lambda e, s: e < 2)
    assert [h["epoch"] for h in model.history_] == [1, 2]


# ---------------------------------------------------------------------------------------
# degenerate data terminates and works
# ---------------------------------------------------------------------------------------
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
        _assert_same(model.user_factors_, ref.user_factors_, name)
        _assert_same(model.item_factors_, ref.item_factors_, name)
        # the caller's matrix is never modified (not even sorted or deduplicated in place)
        if sp.issparse(M) and M.format in ("csr", "csc", "coo"):
            _assert_same(M, snap, name)
            assert M.has_canonical_format == snap.has_canonical_format, name
        elif sp.issparse(M):
            _assert_same(M.toarray(), snap.toarray(), name)
        else:
            _assert_same(np.asarray(M), np.asarray(snap), name)


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


# ---------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------
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
    _assert_same(a.user_factors_, b.user_factors_, "user_factors_")
    _assert_same(a.item_factors_, b.item_factors_, "item_factors_")
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    if optimizer == "adagrad":
        _assert_same(tuple(a.optimizer_state_), tuple(b.optimizer_state_), "state")
    c = cls(**dict(params, random_state=1)).fit(X)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


@pytest.mark.parametrize("kind", ["adversarial", "random", "pgd"])
def test_perturb_with_a_seed_is_bitwise_reproducible(kind, X):
    model = _fit(BPR, X)
    a = aprnb.perturb(model, X, 0.5, kind=kind, random_state=3, steps=2)
    b = aprnb.perturb(model, X, 0.5, kind=kind, random_state=3, steps=2)
    for x, y in zip(a, b):
        _assert_same(x, y, kind)
    c = aprnb.perturb(model, X, 0.5, kind=kind, random_state=4, steps=2)
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


def test_splitters_are_reproducible_from_the_seed(X):
    for f in (D.leave_one_out, lambda M, random_state: D.holdout_split(M, 0.3, random_state)):
        a, b, c = (f(X, random_state=s) for s in (5, 5, 6))
        assert (a[0] != b[0]).nnz == 0 and (a[1] != b[1]).nnz == 0
        assert (a[1] != c[1]).nnz > 0


# ---------------------------------------------------------------------------------------
# property-based: loaders, splitters, evaluation
# ---------------------------------------------------------------------------------------
_ID = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,7}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(train_rows=st.lists(st.tuples(_ID, _ID), min_size=1, max_size=25),
       test_rows=st.lists(st.tuples(_ID, _ID), min_size=0, max_size=8),
       sep=st.sampled_from([",", "\t", ";", " "]),
       extra=st.sampled_from([0, 1, 2]),
       header=st.booleans())
def test_property_delimited_round_trip_of_string_ids(train_rows, test_rows, sep, extra, header):
    with tempfile.TemporaryDirectory() as folder:
        def write(name, rows):
            lines = (["user" + sep + "item"] if header else [])
            for k, (u, i) in enumerate(rows):
                cols = [u, i] + [str(k + 0.5), str(1000 + k)][:extra]
                lines.append(sep.join(cols))
            return _write(os.path.join(folder, name), "\n".join(lines) + "\n")

        tr_path = write("train.txt", train_rows)
        te_path = write("test.txt", test_rows) if test_rows else None
        ds = D.load_delimited(tr_path, te_path, header=header)
    users = sorted({u for u, _ in train_rows + test_rows})
    items = sorted({i for _, i in train_rows + test_rows})
    assert list(ds.user_ids) == users and list(ds.item_ids) == items
    log = ds.interactions
    for k, (u, i) in enumerate(train_rows):
        assert ds.user_ids[log.users[k]] == u and ds.item_ids[log.items[k]] == i
    uix = {u: k for k, u in enumerate(users)}
    iix = {i: k for k, i in enumerate(items)}
    assert ds.train.nnz == len(set(train_rows))
    for u, i in train_rows:
        assert ds.train[uix[u], iix[i]] == 1
    if test_rows:
        assert ds.test.nnz == len(set(test_rows))
        for u, i in test_rows:
            assert ds.test[uix[u], iix[i]] == 1
    if extra == 2:
        assert log.timestamps is not None and len(log.timestamps) == len(train_rows)


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)),
                     min_size=1, max_size=25))
def test_property_delimited_round_trip_of_integer_ids(rows):
    # ids below MIN_INDEX, so that one_based=False may use them as indices
    with tempfile.TemporaryDirectory() as folder:
        path = _write(os.path.join(folder, "a.tsv"),
                      "".join(f"{u}\t{i}\n" for u, i in rows))
        ds = D.load_delimited(path)
        zero = D.load_delimited(path, one_based=False)
    log = ds.interactions
    assert list(ds.user_ids) == sorted({u for u, _ in rows})
    for k, (u, i) in enumerate(rows):
        assert int(ds.user_ids[log.users[k]]) == u and int(ds.item_ids[log.items[k]]) == i
        assert zero.interactions.users[k] == u and zero.interactions.items[k] == i
    assert zero.train.shape == (max(u for u, _ in rows) + 1, max(i for _, i in rows) + 1)


@st.composite
def _interactions(draw, min_users=1, max_users=8, max_items=8):
    n_users = draw(st.integers(min_users, max_users))
    n_items = draw(st.integers(1, max_items))
    cells = draw(st.lists(st.booleans(), min_size=n_users * n_items,
                          max_size=n_users * n_items))
    dense = np.array(cells, dtype=np.float64).reshape(n_users, n_items)
    if not dense.any():
        dense[draw(st.integers(0, n_users - 1)), draw(st.integers(0, n_items - 1))] = 1.0
    return sp.csr_matrix(dense)


@settings(max_examples=60, deadline=None)
@given(M=_interactions(), seed=st.integers(0, 2**32 - 1),
       fraction=st.floats(0.05, 0.95), which=st.sampled_from(["loo", "holdout"]))
def test_property_splitters_partition_the_data(M, seed, fraction, which):
    snap = snapshot(M)
    if which == "loo":
        tr, te = D.leave_one_out(M, random_state=seed)
    else:
        tr, te = D.holdout_split(M, fraction, random_state=seed)
    assert_unchanged(M, snap)
    assert tr.shape == te.shape == M.shape
    assert tr.multiply(te).nnz == 0                       # disjoint
    assert ((tr + te) != (M != 0)).nnz == 0               # nothing lost, nothing added
    deg, tr_deg, te_deg = (np.diff(A.tocsr().indptr) for A in (M, tr, te))
    assert np.all(tr_deg[deg > 0] >= 1)                   # everybody keeps a train item
    assert np.all(te_deg[deg < 2] == 0)
    if which == "loo":
        assert np.array_equal(te_deg, (deg >= 2).astype(te_deg.dtype))
    again = (D.leave_one_out(M, random_state=seed) if which == "loo"
             else D.holdout_split(M, fraction, random_state=seed))
    assert (again[1] != te).nnz == 0


def _finite_factors(n, d, draw):
    values = st.one_of(st.integers(-2, 2).map(float), st.floats(-3, 3, width=32))
    return np.array(draw(st.lists(values, min_size=n * d, max_size=n * d))).reshape(n, d)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), M=_interactions(max_users=7, max_items=7),
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


@settings(max_examples=30, deadline=None)
@given(M=_interactions(max_users=6, max_items=6), seed=st.integers(0, 1000),
       k=st.integers(1, 8))
def test_property_recommend_never_returns_training_items(M, seed, k):
    rng = np.random.default_rng(seed)
    model = BPR(**FAST)
    model.user_factors_ = rng.standard_normal((M.shape[0], 2)).astype(np.float32)
    model.item_factors_ = rng.standard_normal((M.shape[1], 2)).astype(np.float32)
    items, scores = model.recommend(None, k=k, exclude=M, n_threads=1)
    dense = M.toarray() > 0
    for u in range(M.shape[0]):
        valid = [i for i in items[u] if i >= 0]
        assert len(valid) == min(k, int((~dense[u]).sum()))
        assert len(set(valid)) == len(valid) and not dense[u, valid].any()
        assert list(items[u][len(valid):]) == [-1] * (k - len(valid))


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

    def cb(epoch, stats):
        gc.collect()
        assert seen[0]() is None, "the pre-alignment factors are still referenced"
    Spy(factors=4, epochs=2, random_state=0, show_progress=False).fit(X, init=init, callback=cb)


def test_evaluation_workers_stop_after_an_error():
    from aprnb._threads import run_tasks
    done = []
    lock = threading.Lock()

    def work(task, worker):
        if task == 0:
            raise RuntimeError("boom")
        time.sleep(0.01)
        with lock:
            done.append(task)
    with pytest.raises(RuntimeError, match="boom"):
        run_tasks(2, 200, work)
    assert len(done) < 20, len(done)      # the other worker stopped at its next task
