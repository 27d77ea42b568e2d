"""Model input checks: bad parameters, dtypes and warm starts.

Every bad call raises ``ValueError`` or ``TypeError`` with a message naming the
offending input, and leaves the model and its inputs exactly as they were (see
``tests/checks.py``). Bad training matrices, recommend and score arguments are
part of the model contract (``tests/test_model_contract.py``).
"""
import warnings

import numpy as np
import pytest

from aprnb import APR, BPR, ItemPop
from checks import (FAST, INF, NAN, assert_unchanged, fit_fast, learned_attributes, snapshot)


FACTOR_MODELS = (BPR, APR)


# -- model parameters (constructors only store them; fit validates) ----------------------------
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
    ("n_threads", 1.0, TypeError),
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
    model = fit_fast(cls, split[0])
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
    model = fit_fast(APR, split[0])
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


def test_numpy_scalar_parameters_are_accepted(split):
    m = BPR(factors=np.int64(4), epochs=np.int32(2), learning_rate=np.float64(0.05),
            n_threads=np.int64(1), random_state=np.int64(0), show_progress=False)
    m.fit(split[0])
    assert m.user_factors_.shape == (30, 4) and len(m.history_) == 2


# -- training matrices the checks must not cast silently ---------------------------------------
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


# -- warm starts (init=) -----------------------------------------------------------------------
def test_fit_bad_init_rejected_and_init_untouched(split):
    train = split[0]
    source = fit_fast(BPR, train)
    model = fit_fast(BPR, train, random_state=1)
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
    source = fit_fast(BPR, split[0])
    snap = snapshot(source)
    cls(**dict(FAST, optimizer="adagrad")).fit(split[0], init=source)
    assert_unchanged(source, snap)
