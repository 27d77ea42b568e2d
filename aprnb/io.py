"""Model persistence: ``.npz`` files, written atomically, read without pickle.

Layout of a model file (all plain arrays, ``allow_pickle=False``):

``format`` (str "aprnb-model"), ``format_version`` (int), ``aprnb_version``,
``class`` (str), ``params`` (JSON str), ``history`` (JSON str),
``user_factors``, ``item_factors`` and optionally ``opt_users``/``opt_items``
(Adagrad accumulators).
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "aprnb-model"
FORMAT_VERSION = 1


def _registry():
    from .models import APR, BPR, ItemPop
    return {"BPR": BPR, "APR": APR, "ItemPop": ItemPop}


def _params_to_json(params):
    out = {}
    for k, v in params.items():
        if k == "dtype":
            v = np.dtype(v).name
        elif k == "random_state" and not (v is None or isinstance(v, int)):
            v = None  # a Generator cannot be stored; the factors are what matters
        out[k] = v
    return json.dumps(out)


def _check_path(path, must_exist=False):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError("path is empty; pass a file name such as 'model.npz'")
    if must_exist and not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    return path


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = _check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{path}: folder {folder} does not exist; create it first")
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "aprnb_version": np.array(_version()),
        "class": np.array(type(model).__name__),
        "params": np.array(_params_to_json(model.get_params())),
        "history": np.array(json.dumps(getattr(model, "history_", []))),
        "user_factors": np.ascontiguousarray(model.user_factors_),
        "item_factors": np.ascontiguousarray(model.item_factors_),
    }
    state = getattr(model, "optimizer_state_", None)
    if state is not None:
        arrays["opt_users"], arrays["opt_items"] = state
    fd, tmp = tempfile.mkstemp(prefix=".aprnb-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _version():
    from . import __version__
    return __version__


def load(path):
    """Load a model written by ``model.save(path)``.

    Raises ``ValueError`` for files that are not aprnb models, are truncated or
    corrupted, come from a newer format version, or hold inconsistent shapes.
    Nothing is unpickled.
    """
    path = _check_path(path, must_exist=True)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable aprnb model file ({type(e).__name__}: {e}); "
                         f"it may be truncated or not written by aprnb") from None
    need = {"format", "format_version", "class", "params", "user_factors", "item_factors"}
    if not need <= set(data) or str(data["format"]) != FORMAT:
        raise ValueError(f"{path}: not an aprnb model file (missing {sorted(need - set(data))} "
                         f"or wrong 'format' marker)")
    version = int(data["format_version"])
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version} is newer than this aprnb "
                         f"understands ({FORMAT_VERSION}); upgrade aprnb")
    cls = _registry().get(str(data["class"]))
    if cls is None:
        raise ValueError(f"{path}: unknown model class {str(data['class'])!r}")
    try:
        params = json.loads(str(data["params"]))
        history = json.loads(str(data.get("history", np.array("[]"))))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupted parameter block ({e})") from None
    P, Q = data["user_factors"], data["item_factors"]
    if (P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]
            or P.dtype.kind != "f" or Q.dtype.kind != "f"):
        raise ValueError(f"{path}: inconsistent factor arrays {P.shape} {P.dtype} and "
                         f"{Q.shape} {Q.dtype}")
    if "factors" in params and params["factors"] != P.shape[1]:
        raise ValueError(f"{path}: factors={params['factors']} but arrays have width "
                         f"{P.shape[1]}")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))):
        raise ValueError(f"{path}: factors contain NaN or inf")
    if "dtype" in params:
        params["dtype"] = np.dtype(params["dtype"]).type
    try:
        model = cls(**params)
    except TypeError as e:
        raise ValueError(f"{path}: parameters do not match {cls.__name__} ({e})") from None
    model.user_factors_ = np.ascontiguousarray(P)
    model.item_factors_ = np.ascontiguousarray(Q)
    model.history_ = history
    if "opt_users" in data and "opt_items" in data:
        if data["opt_users"].shape != P.shape or data["opt_items"].shape != Q.shape:
            raise ValueError(f"{path}: optimizer state shapes do not match the factors")
        model.optimizer_state_ = (data["opt_users"], data["opt_items"])
    elif hasattr(cls, "_mode"):
        model.optimizer_state_ = None
    return model
