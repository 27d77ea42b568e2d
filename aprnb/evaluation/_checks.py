"""Argument checks of the evaluation entry points (no scoring happens here)."""
import warnings

import numpy as np

from .._validation import check_bool, check_choice, check_factors

PROTOCOLS = ("holdout", "loo", "sampled")


def factors_of(model):
    """``(P, Q)`` from a fitted model or a ``(user_factors, item_factors)`` pair."""
    if isinstance(model, tuple) and len(model) == 2:
        return check_factors(*model)
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        return check_factors(model.user_factors_, model.item_factors_, type(model).__name__)
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        raise ValueError(f"{type(model).__name__} is not fitted yet; call fit(train) first")
    raise TypeError(f"model must be a fitted aprnb model or a (user_factors, item_factors) "
                    f"tuple of arrays, got {type(model).__name__}")


def check_users(users, n_users, name="users", unique=False):
    """Indices as an int64 array (None = all); ``name`` labels the error messages.
    With ``unique``, a repeated index is an error (it would be counted twice)."""
    if users is None:
        return np.arange(n_users, dtype=np.int64)
    arr = np.asarray(users)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                                  or arr.size == 0):
        raise TypeError(f"{name} must be an int or a 1-D array of int indices, got "
                        f"{arr.dtype} array of shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_users):
        raise ValueError(f"{name} contains indices outside [0, {n_users}); there are "
                         f"{n_users} {name}")
    if unique and arr.size:
        vals, counts = np.unique(arr, return_counts=True)
        if counts.max() > 1:
            raise ValueError(f"{name} repeats {vals[counts > 1][:5].tolist()}; each would be "
                             f"counted more than once in the means: pass each once "
                             f"(np.unique({name}))")
    return arr.astype(np.int64)


def metric_names(protocol, ks):
    """Names of the metrics :func:`aprnb.evaluate` returns for ``protocol`` and ``ks``."""
    if protocol == "holdout":
        return [f"{m}@{k}" for k in ks for m in ("recall", "precision", "ndcg", "hr")]
    return [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")] + ["auc"]


def check_protocol(protocol, negatives, shape=None, name="protocol", neg_name="negatives",
                   default="holdout"):
    """The protocol to use: ``protocol``, or when None "sampled" if ``negatives`` are
    given, else ``default``. Negatives with a protocol that ignores them, or the
    sampled protocol without them, raise ``ValueError``."""
    if protocol is None:
        return "sampled" if negatives is not None else default
    check_choice(protocol, name, PROTOCOLS)
    if protocol != "sampled" and negatives is not None:
        raise ValueError(f"{neg_name} were given with {name}={protocol!r}, which ranks "
                         f"against all items and would ignore them; pass {name}='sampled' "
                         f"(or leave it None) to use them, or drop {neg_name}")
    if protocol == "sampled" and shape is not None:
        check_negatives(negatives, shape, neg_name)
    return protocol


def check_beyond_accuracy(beyond_accuracy, protocol):
    """The ``beyond_accuracy`` flag, refused (``ValueError``) with the sampled protocol."""
    if check_bool(beyond_accuracy, "beyond_accuracy") and protocol == "sampled":
        raise ValueError("beyond_accuracy=True needs a full ranking, and protocol='sampled' "
                         "only ranks the held-out item against a few listed negatives: "
                         "it builds no top-K list over the catalogue. Pass protocol='loo' "
                         "(or 'holdout') without negatives; with a Dataset, "
                         "protocol='loo' ignores its negatives")
    return bool(beyond_accuracy)


def check_negatives(negatives, shape, name="negatives"):
    """The sampled protocol's negatives as an int64 array (n_users, n_neg), -1 = padding."""
    if negatives is None:
        raise ValueError(f"protocol='sampled' needs {name}=: an int array (n_users, n_neg), "
                         f"e.g. Dataset.negatives from aprnb.data.open_dataset()")
    neg = np.asarray(negatives)
    if neg.ndim != 2 or neg.shape[0] != shape[0] or not np.issubdtype(neg.dtype, np.integer):
        raise ValueError(f"{name} must be an int array of shape (n_users={shape[0]}, n_neg),"
                         f" got {neg.dtype} {neg.shape}")
    if neg.size and (neg.max() >= shape[1] or neg.min() < -1):
        raise ValueError(f"{name} holds item ids outside [0, {shape[1]}) (use -1 as "
                         f"padding)")
    return neg.astype(np.int64)


def check_overlap(shared, n_test, stacklevel=3):
    """``shared`` test interactions (of ``n_test``) that are also training interactions
    can never be hit once the training items are excluded: an error when that is all
    of them (every metric would be 0, e.g. test passed as train), a warning when it is
    some (``stacklevel`` as for :func:`warnings.warn`, counted from here)."""
    if shared and shared == n_test:
        raise ValueError(f"all {n_test} test interactions are also training interactions, "
                         f"and training items are excluded from the ranking, so every metric "
                         f"would be 0; pass the held-out interactions as test (or "
                         f"exclude_train=False)")
    if shared:
        warnings.warn(f"{shared} of the {n_test} test interactions are also training "
                      f"interactions; with exclude_train=True they can never be hit",
                      RuntimeWarning, stacklevel=stacklevel)


def check_block_size(block_size):
    """``block_size`` (users per block) as a positive int, or None."""
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"block_size must be a positive int (users per block) or None, "
                         f"got {block_size!r}")
    return int(block_size)
