"""The model file format: its constants, path checks and the atomic write.

A model file is an ``.npz`` archive of plain arrays (read without pickle):
``format`` (str "aprnb-model"), ``format_version`` (int), ``aprnb_version``,
``class`` (str), ``params`` (JSON str), ``history`` (JSON str),
``user_factors``, ``item_factors`` and optionally ``opt_users``/``opt_items``
(Adagrad accumulators). Since format version 2 a fitted model also keeps what it
was trained on: ``train_indptr``/``train_indices`` (its training interactions, CSR),
``provenance`` (JSON: the training matrix's fingerprint, the split specification,
the warm start, the aprnb version) and optionally ``user_ids``/``item_ids`` (the
raw id of each index). Version 1 files still load, without those. A model class
may add arrays of its own (``_extra_members``: trained weights beyond the two
ranking tables, optimizer state), each under the member name ``x:<name>``.

This module knows arrays and JSON, not model classes: each model assembles its
own arrays (``BaseRecommender._arrays``), and :func:`aprnb.io.load` rebuilds the
model from them.
"""
import json
import os

import numpy as np

from ._npz import write_npz
from ._provenance import jsonable_params
from . import __version__

FORMAT = "aprnb-model"
FORMAT_VERSION = 2
#: The members a model file may have; nothing else in the archive is read.
MEMBERS = ("format", "format_version", "aprnb_version", "class", "params", "history",
           "user_factors", "item_factors", "opt_users", "opt_items", "train_indptr",
           "train_indices", "provenance", "user_ids", "item_ids")
#: The prefix of the member names of a model class's own arrays (``_extra_members``).
EXTRA = "x:"


def check_path(path, must_exist=False, name="path"):
    """``path`` as a str naming a file (``name`` labels the messages)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name} is empty; pass a file name such as 'model.npz'")
    if os.path.isdir(path):
        raise ValueError(f"{name} {path}: is a directory; pass a file name such as "
                         f"'{os.path.join(path, 'model.npz')}'")
    if must_exist and not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; check the path")
    if must_exist and not os.path.isfile(path):
        raise ValueError(f"{path}: not a regular file")
    return path


def write_model(path, class_name, params, history, arrays):
    """Write a model file atomically (temporary file in the same folder, then rename),
    with the permissions ``open(path, "w")`` would give it.

    ``arrays`` are the model's own members (factors, optimizer state, training
    matrix, provenance, id maps; see the module docstring). Raises
    ``FileNotFoundError`` when the folder does not exist.
    """
    path = check_path(path)
    unknown = {n for n in arrays if n not in MEMBERS and not n.startswith(EXTRA)}
    if unknown:
        raise ValueError(f"not model file members: {sorted(unknown)}")
    head = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "aprnb_version": np.array(__version__),
        "class": np.array(class_name),
        "params": np.array(json.dumps(jsonable_params(params))),
        "history": np.array(json.dumps(history)),
    }
    write_npz(path, {**head, **arrays})
    return path
