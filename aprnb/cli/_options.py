"""Parsed options -> the objects the commands work with: the data set (and its split),
the evaluation protocol and cut-offs, a new or a saved model, the output path.
"""
import ast
import os

import numpy as np

from .. import data, models
from ..io import _check_path
from ..models import APR, BPR, VAT, ItemPop

#: ``--model`` names of the classes built from the general options and ``--set`` only.
OTHER_MODELS = {"cdae": "CDAE", "irgan": "IRGAN", "neumf": "NeuMF"}


def _header(value):
    return {"auto": "auto", "yes": True, "no": False}[value]


def open_data(a, model=None):
    """The Dataset that the data options describe.

    The split (and its seed) comes from ``--split``/``--split-seed`` when given,
    else from the split ``model`` records, else "given"/0. Without ``--data`` and
    ``--train``, the data files the model records are opened.
    """
    spec = dict(((getattr(model, "provenance_", None) or {}).get("split")) or {})
    if a.data is not None and a.train is not None:
        raise ValueError("pass either --data or --train/--test, not both")
    if a.train is None and (a.test or a.negatives):
        raise ValueError("--test and --negatives go with --train (a delimited training "
                         "file); for a folder or NCF prefix use --data alone")
    if a.data is None and a.train is None:
        if not spec:
            raise ValueError("pass --data PATH (or --train PATH --test PATH)" + (
                "; this model does not record the data it was trained on" if model else ""))
        kw = {k: spec[k] for k in ("path", "format", "sep", "header", "test", "negatives",
                                   "one_based", "min_value") if k in spec}
    else:
        kw = dict(path=a.data if a.data is not None else a.train,
                  format=a.format if a.train is None else "delimited", sep=a.sep,
                  header=_header(a.header), test=a.test, negatives=a.negatives,
                  min_value=a.min_value)
        if a.train is not None and a.test is None and a.split is None and not spec:
            raise ValueError("--train needs --test PATH, or --split loo/holdout to split it")
    kw["split"] = a.split or spec.get("split", "given")
    if a.split_seed is not None and kw["split"] == "given":
        raise ValueError("--split-seed seeds a loo or holdout split, but the split is 'given'; "
                         "pass --split loo or --split holdout too")
    kw["seed"] = a.split_seed if a.split_seed is not None else spec.get("seed", 0)
    if "test_fraction" in spec:
        kw["test_fraction"] = spec["test_fraction"]
    return data.open_dataset(**kw)   # looked up per call (tests stand in for it)


def protocol(a, ds):
    """--protocol, where "auto" is "sampled" when the data has negatives, "loo" for a
    leave-one-out split and "holdout" otherwise."""
    if a.protocol != "auto":
        return a.protocol
    if ds.negatives is not None:
        return "sampled"
    return "loo" if ds.split.get("split") == "loo" else "holdout"


def ks(a, protocol, default):
    """--k, or its protocol-dependent default (10 under the sampled protocol, where a
    user has only ~100 candidates)."""
    if a.k is not None:
        return a.k
    return [10] if protocol == "sampled" else default


def negatives(ds, protocol):
    return ds.negatives if protocol == "sampled" else None


def settings(pairs):
    """``--set NAME=VALUE`` options as a dict (VALUE a Python literal, else a string)."""
    out = {}
    for pair in pairs:
        name, eq, text = pair.partition("=")
        if not eq or not name.strip().isidentifier():
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set hidden=100")
        try:
            out[name.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = text.strip()
    return out


def model_from_args(a):
    """The unfitted model of ``aprnb train``'s options (``--set`` applied last, checked
    against the class's parameters)."""
    model = _model(a)
    return model.set_params(**settings(a.set))


def _model(a):
    dtype = {"float32": np.float32, "float64": np.float64}[a.dtype]
    if a.model in OTHER_MODELS:
        return getattr(models, OTHER_MODELS[a.model])(
            epochs=a.epochs, n_threads=a.threads, random_state=a.seed, dtype=dtype,
            show_progress=not (a.quiet or a.json))
    common = dict(factors=a.factors, learning_rate=a.lr, reg=a.reg, epochs=a.epochs,
                  optimizer=a.optimizer, init_std=a.init_std, n_threads=a.threads,
                  random_state=a.seed, dtype=dtype, show_progress=not (a.quiet or a.json),
                  batch_size=a.batch_size)
    if a.model == "bpr":
        return BPR(**common)
    if a.model == "apr":
        return APR(eps=a.eps, reg_adv=a.reg_adv, noise=a.noise, bpr_epochs=a.bpr_epochs,
                   **common)
    if a.model == "vat":
        return VAT(eps=a.eps, reg_adv=a.reg_adv, vul_lambda=a.vul_lambda,
                   bpr_epochs=a.bpr_epochs, **common)
    return ItemPop()


def check_out(path, name="--out"):
    """Fail before the work, not after, on an unusable output path (option ``name``)."""
    path = _check_path(path, name=name)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name} {path}: folder {folder} does not exist; create it "
                                f"first")
    return path
