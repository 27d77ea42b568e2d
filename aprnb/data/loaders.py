"""Readers for the file formats whose ids are indices.

* :func:`load_lightgcn` -- NGCF/LightGCN ``train.txt``/``test.txt``: ``user item item ...``.
* :func:`load_ncf` -- the official APR/NCF files ``<prefix>.train.rating``,
  ``<prefix>.test.rating`` and optional ``<prefix>.test.negative``.
* :func:`load_lastfm` -- the Last.fm folder (``train.tsv``/``test.tsv``, 1-based).

Delimited logs with arbitrary ids are read by :mod:`aprnb.data.delimited`. Every
reader raises ``ValueError`` naming the file and the 1-based line number of the
first malformed line.
"""
import os

import numpy as np

from ._text import (_check_file, _check_folder, _check_index_size, _int_index, _Largest, _lines,
                    _parse_int)
from .dataset import Dataset, _binary_csr
from .delimited import load_delimited
from .negatives import _negative_matrix, _read_negatives


def _read_lightgcn_file(path, top_user, top_item):
    """Return (users, items, lines) for a ``user item item ...`` file; ``top_user`` and
    ``top_item`` (:class:`_Largest`) record the largest ids."""
    users, items = [], []
    n_lines = 0
    for lineno, line in _lines(path):
        toks = line.split()
        if not toks:
            continue
        n_lines += 1
        u = _parse_int(toks[0], path, lineno, "user id")
        its = [_parse_int(t, path, lineno, "item id") for t in toks[1:]]
        top_user.update([u], path, lineno)
        top_item.update(its, path, lineno)
        users.extend([u] * len(its))
        items.extend(its)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), n_lines


def load_lightgcn(folder, name=None):
    """Load an NGCF/LightGCN split: ``train.txt`` and ``test.txt`` in ``folder``.

    Each line is ``user item item ...`` with 0-based ids (a user may have no
    items). Returns a :class:`Dataset` whose ``train`` and ``test`` are binary CSR
    matrices over ``n_users = max user id + 1`` and ``n_items = max item id + 1``.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    folder = _check_folder(folder, "train.txt and test.txt")
    top_user, top_item = _Largest(), _Largest()
    tr = _read_lightgcn_file(_check_file(os.path.join(folder, "train.txt")), top_user, top_item)
    te = _read_lightgcn_file(_check_file(os.path.join(folder, "test.txt")), top_user, top_item)
    _check_index_size(top_user, tr[2] + te[2], "user")
    _check_index_size(top_item, len(tr[1]) + len(te[1]), "item")
    n_users, n_items = 1 + top_user.value, 1 + top_item.value
    if n_users <= 0 or n_items <= 0:
        raise ValueError(f"{folder}: train.txt and test.txt hold no interactions")
    shape = (n_users, n_items)
    return Dataset(train=_binary_csr(tr[0], tr[1], shape), test=_binary_csr(te[0], te[1], shape),
                   user_ids=np.arange(n_users), item_ids=np.arange(n_items),
                   name=name or os.path.basename(os.path.normpath(folder)))


def _read_rating_file(path, top_user, top_item):
    users, items = [], []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        toks = line.rstrip("\r\n").split("\t")
        if len(toks) < 2:
            raise ValueError(f"{path}, line {lineno}: expected 'user<TAB>item<TAB>rating"
                             f"<TAB>timestamp', got {line.strip()!r}")
        users.append(_parse_int(toks[0].strip(), path, lineno, "user id"))
        items.append(_parse_int(toks[1].strip(), path, lineno, "item id"))
        top_user.update(users[-1:], path, lineno)
        top_item.update(items[-1:], path, lineno)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def load_ncf(prefix, name=None):
    """Load the official APR/NCF files ``<prefix>.train.rating``, ``.test.rating``
    and, when present, ``.test.negative`` (tab separated, 0-based ids).

    Returns a :class:`Dataset`; ``negatives`` is an int array of shape
    ``(n_users, n_neg)`` with -1 rows for users without a negative list. Every
    negative list is checked against ``.test.rating``: its head ``(user,item)``
    must be a test pair, and no negative may be the user's test item. Items that
    appear only as negatives extend the item index (they are catalogue items the
    training data never shows); unknown users are refused.
    """
    if not isinstance(prefix, (str, os.PathLike)):
        raise TypeError(f"prefix must be a path prefix, got {type(prefix).__name__}")
    prefix = os.fspath(prefix)
    top_user, top_item = _Largest(), _Largest()
    tu, ti = _read_rating_file(_check_file(prefix + ".train.rating"), top_user, top_item)
    su, si = _read_rating_file(_check_file(prefix + ".test.rating"), top_user, top_item)
    neg_path = prefix + ".test.negative"
    neg_rows = _read_negatives(neg_path, form="ncf") if os.path.isfile(neg_path) else None
    n_ids = len(tu) + len(su)
    if neg_rows:
        for lineno, _, _, negs in neg_rows:
            top_item.update([_parse_int(t, neg_path, lineno, "negative item id")
                             for t in negs], neg_path, lineno)
            n_ids += len(negs)
    _check_index_size(top_user, len(tu) + len(su), "user")
    _check_index_size(top_item, n_ids, "item")
    n_users, n_items = 1 + top_user.value, 1 + top_item.value
    if n_users <= 0:
        raise ValueError(f"{prefix}.train.rating holds no interactions")
    shape = (n_users, n_items)
    test = _binary_csr(su, si, shape)
    negatives = (_negative_matrix(neg_rows, neg_path, _int_index(n_users), _int_index(n_items),
                                  test) if neg_rows else None)
    return Dataset(train=_binary_csr(tu, ti, shape), test=test,
                   negatives=negatives, user_ids=np.arange(n_users),
                   item_ids=np.arange(n_items), name=name or os.path.basename(prefix))


def load_lastfm(folder):
    """Load the Last.fm LightGCN-PyTorch split: ``train.tsv``/``test.tsv``, 1-based ids."""
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got "
                        f"{type(folder).__name__}")
    folder = _check_folder(folder, "train.tsv and test.tsv")
    return load_delimited(os.path.join(folder, "train.tsv"), os.path.join(folder, "test.tsv"),
                          sep="\t", one_based=True, name="lastfm")
