"""Fingerprints of interaction matrices: how a model knows the data it was trained on.

A fingerprint is a SHA-256 digest of the canonical binary CSR form of a matrix
(shape, row pointers, column indices), so that two matrices with the same set of
interactions have the same fingerprint, whatever their format or dtype.
"""
import hashlib
import warnings

import numpy as np

from . import __version__


def fingerprint(M):
    """``"sha256:<hex>"`` of a canonical binary CSR matrix ``M`` (see
    :func:`aprnb._validation.check_interactions`)."""
    h = hashlib.sha256()
    h.update(np.asarray(M.shape, dtype=np.int64).tobytes())
    for a in (M.indptr, M.indices):       # as int64, a block at a time: no full copies
        for lo in range(0, len(a), _BLOCK):
            h.update(np.ascontiguousarray(a[lo:lo + _BLOCK], dtype=np.int64))
    return "sha256:" + h.hexdigest()


#: Entries per block of :func:`fingerprint` (8 MB as int64).
_BLOCK = 1 << 20


def factors_fingerprint(P, Q):
    """``"sha256:<hex>"`` of a pair of factor tables (dtype, shapes and bytes)."""
    h = hashlib.sha256()
    for A in (P, Q):
        A = np.ascontiguousarray(A)
        h.update(f"{A.dtype.str}{A.shape}".encode())
        h.update(A.tobytes())
    return "sha256:" + h.hexdigest()


def record(X, data=None, init=None, fp=None):
    """Provenance of a fit on the canonical matrix ``X``.

    Parameters
    ----------
    X : canonical binary CSR matrix the model is trained on.
    data : Dataset, optional
        The data set ``X`` came from: its ``split`` specification and id maps
        are recorded.
    init : fitted model or (P, Q) tuple, optional
        The warm start. When ``data`` is None and ``init`` was trained on the same
        matrix, its split and id maps carry over. Every matrix of the warm-start
        chain goes into ``seen``; when ``init`` was trained on another matrix, a
        warning says that :func:`check_split` will refuse the model.
    fp : str, optional
        ``fingerprint(X)``, if already computed.

    Returns
    -------
    (dict, user_ids or None, item_ids or None)
    """
    fp = fingerprint(X) if fp is None else fp
    split = getattr(data, "split", None)
    uids = _ids(getattr(data, "user_ids", None))
    iids = _ids(getattr(data, "item_ids", None))
    init_rec = None
    seen = {fp}
    if init is not None:
        if isinstance(init, tuple):
            init_rec = {"class": "factors", "factors": factors_fingerprint(*init)}
        else:
            prev = getattr(init, "provenance_", None) or {}
            init_rec = {"class": type(init).__name__,
                        "params": jsonable_params(init.get_params()),
                        "factors": factors_fingerprint(init.user_factors_, init.item_factors_),
                        "train_fingerprint": prev.get("train_fingerprint"),
                        "split": prev.get("split")}
            seen.update(prev.get("seen") or [prev.get("train_fingerprint")])
            seen.discard(None)
            if prev.get("train_fingerprint") == fp:
                if data is None:
                    split = prev.get("split")
                    uids = getattr(init, "user_ids_", None)
                    iids = getattr(init, "item_ids_", None)
            elif prev.get("train_fingerprint") is not None:
                warnings.warn(f"init ({type(init).__name__}) was trained on a different "
                              f"interaction matrix than this fit's; the model has seen both, "
                              f"so evaluate and robustness will refuse it (check_split=False "
                              f"to score it anyway)", UserWarning, stacklevel=4)
    if uids is not None and len(uids) != X.shape[0]:
        raise ValueError(f"data.user_ids has {len(uids)} ids for {X.shape[0]} users")
    if iids is not None and len(iids) != X.shape[1]:
        raise ValueError(f"data.item_ids has {len(iids)} ids for {X.shape[1]} items")
    prov = {"train_fingerprint": fp, "train_shape": [int(X.shape[0]), int(X.shape[1])],
            "train_nnz": int(X.nnz), "split": split, "init": init_rec,
            "seen": sorted(seen), "aprnb_version": __version__}
    return prov, uids, iids


def _ids(ids):
    """An id map as an array that saves without pickle: integers stay integers, anything
    else (objects, mixed) becomes strings."""
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"id maps must be 1-D, got shape {ids.shape}")
    return ids if ids.dtype.kind in "iuU" else ids.astype(str)


def jsonable_params(params):
    """A model's ``get_params()`` as plain JSON values: dtypes by name, numpy scalars as
    Python scalars, a ``random_state`` Generator as None (it cannot be stored; the
    factors are what matters), a tuple of scalars as a list, anything else by its
    ``repr``."""
    out = {}
    for k, v in params.items():
        if k == "dtype" or isinstance(v, type):
            v = np.dtype(v).name
        elif isinstance(v, np.generic):
            v = v.item()
        if k == "random_state" and not (v is None or isinstance(v, int)):
            v = None
        elif isinstance(v, tuple) and all(isinstance(x, (bool, int, float, str)) for x in v):
            v = list(v)               # e.g. NeuMF's layers; the class turns it back
        elif not (v is None or isinstance(v, (bool, int, float, str))):
            v = repr(v)
        out[k] = v
    return out


def overlap(train, test):
    """How many test interactions are also training interactions."""
    return test.multiply(train).count_nonzero() if test.nnz and train.nnz else 0


def check_split(model, train, test, what="evaluate", shared=None):
    """Refuse to score ``model`` on data that contradicts its provenance.

    ``train`` must be the matrix the model was trained on (same fingerprint), and
    no test interaction may be one the model trained on. Models without
    provenance (bare factor tuples, files from before provenance) pass.
    """
    prov = getattr(model, "provenance_", None)
    if not prov:
        return
    override = ("pass check_split=False (CLI: --no-split-check) only if this is deliberate")
    fp = fingerprint(train)
    if fp != prov.get("train_fingerprint"):
        raise ValueError(
            f"{what}: train is not the matrix this {type(model).__name__} was trained on "
            f"({train.nnz} interactions vs {prov.get('train_nnz')}; the fingerprints "
            f"differ). Scoring on another split mixes training and test interactions: pass "
            f"the model's own training data (model.train_) and a test set disjoint from it, "
            f"or {override}")
    others = [f for f in prov.get("seen", []) if f != fp]
    if others:
        raise ValueError(
            f"{what}: this {type(model).__name__} was warm-started (directly or further back) "
            f"from a model trained on a different interaction matrix, which may hold these "
            f"test interactions; train the whole chain on one split, or {override}")
    if test is not None:
        # train is the model's training matrix here (same fingerprint)
        leak = overlap(train, test) if shared is None else shared
        if leak:
            raise ValueError(
                f"{what}: {leak} of the {test.nnz} test interactions are ones this "
                f"{type(model).__name__} was trained on, so its metrics would be inflated; "
                f"evaluate on the test set of the split the model was trained on "
                f"(model.provenance_['split']), or {override}")
