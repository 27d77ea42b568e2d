"""Loading model files (the format is described in :mod:`aprnb._modelfile`).

:func:`load` reads the archive without pickle, checks every member, and rebuilds
the model class named in the file.
"""
import numpy as np
import scipy.sparse as sp

from ._modelfile import EXTRA, FORMAT, FORMAT_VERSION, MEMBERS, check_path
from ._npz import read_json, read_npz
from ._provenance import fingerprint
from .models import APR, BPR, CDAE, IRGAN, VAT, ItemPop, NeuMF
from .models._factor import FactorModel

#: The classes a model file may name.
REGISTRY = {"BPR": BPR, "APR": APR, "VAT": VAT, "ItemPop": ItemPop, "CDAE": CDAE,
            "IRGAN": IRGAN, "NeuMF": NeuMF}
_check_path = check_path     # the CLI checks --out paths with it


def load(path):
    """Load a model written by ``model.save(path)``.

    Raises ``ValueError`` for files that are not aprnb models, are truncated or
    corrupted, come from a newer format version, or hold inconsistent shapes.
    Nothing is unpickled.
    """
    path = check_path(path, must_exist=True)
    extras = sorted({EXTRA + n for c in REGISTRY.values() for n in c._extra_members})
    data = read_npz(path, MEMBERS + tuple(extras))
    cls = _model_class(path, data)
    params = read_json(path, data["params"], "parameter")
    history = read_json(path, data.get("history", np.array("[]")), "history")
    if not isinstance(params, dict):
        raise ValueError(f"{path}: parameters do not match any model (corrupted parameter "
                         f"block: not a mapping)")
    if not isinstance(history, list):
        raise ValueError(f"{path}: corrupted history block (not a list)")
    P, Q = _factors(path, data, cls._width(params))
    try:
        if "dtype" in params:
            params["dtype"] = np.dtype(params["dtype"]).type
        model = cls(**params)
        if hasattr(model, "_validate_params"):
            model._validate_params()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: parameters do not match {cls.__name__} ({e})") from None
    model.user_factors_, model.item_factors_ = P, Q
    model.history_ = history
    if issubclass(cls, FactorModel):
        model.optimizer_state_ = _optimizer_state(path, data, P, Q)
    _load_provenance(path, data, model, P.shape[0], Q.shape[0])
    _load_extras(path, data, model)
    return model


def _load_extras(path, data, model):
    """Set the class's own arrays (``_extra_members``) and let the model check them."""
    for name in model._extra_members:
        member = data.get(EXTRA + name)
        if member is None:
            raise ValueError(f"{path}: corrupted file: the {type(model).__name__} member "
                             f"{name!r} is missing")
        if member.dtype.kind not in "biuf":
            raise ValueError(f"{path}: corrupted member {name!r} ({member.dtype} is not a "
                             f"numeric array)")
        setattr(model, name + "_", np.ascontiguousarray(_native(member)))
    model._check_loaded(path)


def _model_class(path, data):
    """The model class a file names, after checking its format marker and version."""
    need = {"format", "format_version", "class", "params", "user_factors", "item_factors"}
    if not need <= set(data) or data["format"].shape != () or str(data["format"]) != FORMAT:
        raise ValueError(f"{path}: not an aprnb model file (missing {sorted(need - set(data))} "
                         f"or wrong 'format' marker)")
    fv = data["format_version"]
    if fv.shape != () or fv.dtype.kind not in "iu":
        raise ValueError(f"{path}: corrupted format_version field {fv!r}")
    version = int(fv)
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version} is newer than this aprnb "
                         f"understands ({FORMAT_VERSION}); upgrade aprnb")
    cls = REGISTRY.get(str(data["class"])) if data["class"].shape == () else None
    if cls is None:
        raise ValueError(f"{path}: unknown model class {str(data['class'])!r}")
    return cls


def _factors(path, data, width):
    """The checked factor tables ``(P, Q)`` of a model file (``width``: the class's
    expected width for the file's parameters, or None)."""
    P, Q = (_native(data["user_factors"]), _native(data["item_factors"]))
    if (P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]
            or P.dtype not in (np.float32, np.float64) or Q.dtype != P.dtype):
        raise ValueError(f"{path}: inconsistent factor arrays {P.shape} {P.dtype} and "
                         f"{Q.shape} {Q.dtype}")
    if min(P.shape + Q.shape) == 0:
        raise ValueError(f"{path}: corrupted factor tables of shapes {P.shape} and {Q.shape} "
                         f"(a model has at least one user, one item and one factor)")
    if width is not None and width != P.shape[1]:
        raise ValueError(f"{path}: the parameters give factor tables of width {width} but "
                         f"the arrays have width {P.shape[1]}")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))):
        raise ValueError(f"{path}: factors contain NaN or inf")
    return np.ascontiguousarray(P), np.ascontiguousarray(Q)


def _optimizer_state(path, data, P, Q):
    """The Adagrad accumulators of a model file, checked, or None."""
    if "opt_users" not in data or "opt_items" not in data:
        return None
    GU, GI = data["opt_users"], data["opt_items"]
    if GU.shape != P.shape or GI.shape != Q.shape or GU.dtype.kind != "f" \
            or GI.dtype.kind != "f":
        raise ValueError(f"{path}: optimizer state shapes do not match the factors")
    if not (np.all(np.isfinite(GU)) and np.all(np.isfinite(GI))
            and np.all(GU > 0) and np.all(GI > 0)):
        raise ValueError(f"{path}: optimizer state holds NaN, inf or non-positive values")
    return GU, GI


def _load_provenance(path, data, model, n_users, n_items):
    """Set ``train_``, ``provenance_`` and the id maps from a version-2 file's members."""
    have = [k for k in ("train_indptr", "train_indices", "provenance") if k in data]
    if have and len(have) < 3:
        raise ValueError(f"{path}: corrupted file: it has {have} but not all of "
                         f"train_indptr, train_indices and provenance")
    if have:
        X = _training_matrix(path, data["train_indptr"], data["train_indices"], n_users,
                             n_items)
        prov = _check_provenance(path, read_json(path, data["provenance"], "provenance"))
        if fingerprint(X) != prov["train_fingerprint"]:
            raise ValueError(f"{path}: corrupted file: the training interactions do not match "
                             f"their recorded fingerprint")
        model.train_, model.provenance_ = X, prov
    for name, n in (("user_ids", n_users), ("item_ids", n_items)):
        if name in data:
            ids = data[name]
            if ids.ndim != 1 or len(ids) != n or ids.dtype.kind not in "iuU":
                raise ValueError(f"{path}: corrupted {name}: expected {n} integer or string "
                                 f"ids, got {ids.dtype} {ids.shape}")
            if len(np.unique(ids)) != n:
                raise ValueError(f"{path}: corrupted {name}: the ids are not distinct")
            setattr(model, name + "_", _native(ids))


def _native(a):
    """``a`` in native byte order (a file may hold big-endian arrays)."""
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder == ">" else a


def _training_matrix(path, indptr, indices, n_users, n_items):
    """The stored training interactions as a canonical CSR matrix, or ValueError."""
    ok = (indptr.ndim == 1 and indices.ndim == 1 and indptr.dtype.kind in "iu"
          and indices.dtype.kind in "iu" and len(indptr) == n_users + 1)
    if ok:
        indptr = indptr.astype(np.int64)          # no unsigned wrap-around in the checks
        indices = indices.astype(np.int64)
        ok = (indptr[0] == 0 and indptr[-1] == len(indices)
              and bool(np.all(np.diff(indptr) >= 0))
              and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < n_items)))
    if ok:
        X = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices.astype(np.int32),
                           indptr.astype(np.int32)), shape=(n_users, n_items))
        # canonical: indices sorted and distinct within each row
        rows = np.repeat(np.arange(n_users), np.diff(indptr))
        step = np.diff(indices)
        ok = bool(np.all((step > 0) | (rows[1:] != rows[:-1])))
    if not ok:
        raise ValueError(f"{path}: corrupted training interactions (train_indptr/"
                         f"train_indices do not form a {n_users} x {n_items} matrix)")
    X.has_sorted_indices = True
    return X


#: The keys a split specification may hold, as :func:`aprnb.data.open_dataset` takes them.
_SPLIT_KEYS = {"path", "format", "split", "seed", "sep", "header", "test", "negatives",
               "test_fraction", "one_based", "min_value"}


def _check_provenance(path, prov):
    """A provenance block of the expected shape, or ValueError naming the file."""
    def simple(v):
        return v is None or isinstance(v, (str, int, float, bool))

    split = prov.get("split") if isinstance(prov, dict) else None
    ok = (isinstance(prov, dict) and isinstance(prov.get("train_fingerprint"), str)
          and isinstance(prov.get("seen", []), list)
          and all(isinstance(f, str) for f in prov.get("seen", []))
          and (split is None or (isinstance(split, dict) and set(split) <= _SPLIT_KEYS
                                 and all(simple(v) for v in split.values())))
          and (prov.get("init") is None or isinstance(prov.get("init"), dict)))
    if not ok:
        raise ValueError(f"{path}: corrupted provenance block (not the mapping aprnb writes)")
    return prov
