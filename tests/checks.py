"""Checks shared by the test modules: bitwise snapshots of models, matrices and files.

A bad call must leave every model, input matrix and file exactly as it was: take a
:func:`snapshot` before the call and :func:`assert_unchanged` after it; files are
compared by :func:`digest`, folders by :func:`listing`.
"""
import copy
import hashlib
import math
import os
import re

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

from aprnb import APR, BPR, ItemPop

#: Fast settings for the small 30 x 20 data set of the ``X``/``split`` fixtures.
FAST = dict(factors=4, epochs=2, n_threads=1, random_state=0, show_progress=False)
NAN, INF = float("nan"), float("inf")


def assert_same(a, b, where):
    """Bitwise/structural equality of two snapshotted values."""
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray), f"{where}: was an array, now {type(a).__name__}"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: dtype/shape changed"
        assert a.tobytes() == b.tobytes(), f"{where}: values changed"
    elif sp.issparse(b):
        assert sp.issparse(a) and a.format == b.format and a.shape == b.shape, where
        for attr in ("data", "indices", "indptr", "row", "col"):
            if hasattr(b, attr):
                assert_same(getattr(a, attr), getattr(b, attr), f"{where}.{attr}")
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: length/type changed"
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys changed"
        for k in b:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
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
    """Assert that ``obj`` equals its :func:`snapshot` ``snap`` bitwise."""
    if sp.issparse(obj) or isinstance(obj, np.ndarray):
        assert_same(obj, snap, "matrix")
        return
    assert_same(dict(vars(obj)), snap, type(obj).__name__)


def learned_attributes(model):
    """Names of the attributes of ``model`` that end in ``_`` (set by fit)."""
    return sorted(k for k in vars(model) if k.endswith("_"))


def digest(path):
    """SHA-256 of the file at ``path``."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def listing(folder):
    """Sorted names in ``folder``."""
    return sorted(os.listdir(folder))


def message(excinfo):
    """The message of a ``pytest.raises`` result."""
    return str(excinfo.value)


def fit_fast(cls, train, **kw):
    """``cls`` fitted on ``train`` with :data:`FAST` settings and Adagrad (ItemPop as is)."""
    if cls is ItemPop:
        return ItemPop().fit(train)
    params = dict(FAST, optimizer="adagrad")
    params.update(kw)
    return cls(**params).fit(train)


def write_file(path, text, mode="w"):
    """Write ``text`` (str, or bytes with ``mode="wb"``) to ``path``; return ``str(path)``."""
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
        fh.write(text)
    return str(path)


@st.composite
def interactions(draw, min_users=1, max_users=8, max_items=8):
    """A small binary CSR matrix with at least one interaction (hypothesis)."""
    n_users = draw(st.integers(min_users, max_users))
    n_items = draw(st.integers(1, max_items))
    cells = draw(st.lists(st.booleans(), min_size=n_users * n_items,
                          max_size=n_users * n_items))
    dense = np.array(cells, dtype=np.float64).reshape(n_users, n_items)
    if not dense.any():
        dense[draw(st.integers(0, n_users - 1)), draw(st.integers(0, n_items - 1))] = 1.0
    return sp.csr_matrix(dense)


def write(path, text):
    """Write ``text`` to the :class:`pathlib.Path` ``path`` (UTF-8); return ``path``."""
    path.write_text(text, encoding="utf-8")
    return path


def error_at(path, line):
    """Regex for a ValueError message naming ``path`` and ``line``."""
    return re.escape(str(path)) + r".*line " + str(line) + r"\b"


def write_ncf(tmp_path, negative=True):
    """Toy NCF files ``tmp_path/toy.*`` (train, test, optional negatives); returns the prefix."""
    prefix = tmp_path / "toy"
    write(tmp_path / "toy.train.rating",
          "0\t1\t5\t978300760\n0\t2\t3\t978300761\n1\t0\t4\t978300762\n"
          "2\t3\t1\t978300763\n2\t1\t2\t978300764\n")
    write(tmp_path / "toy.test.rating", "0\t3\t4\t978300770\n1\t2\t5\t978300771\n"
          "2\t0\t3\t978300772\n")
    if negative:
        write(tmp_path / "toy.test.negative",
              "(0,3)\t4\t0\t6\n(1,2)\t3\t5\n(2,0)\t4\t5\t2\n")
    return prefix


#: Every trained-model configuration of the contract suite: name -> (class, parameters).
CONFIGURATIONS = {
    "bpr-sgd": (BPR, dict(optimizer="sgd")),
    "bpr-adagrad": (BPR, dict(optimizer="adagrad")),
    "apr-sgd": (APR, dict(optimizer="sgd")),
    "apr-adagrad": (APR, dict(optimizer="adagrad")),
    "apr-batch8": (APR, dict(optimizer="sgd", batch_size=8)),
    "apr-random": (APR, dict(optimizer="sgd", noise="random")),
}


def large_margin_triple(dt=np.float64):
    """A triple with margin x = 16 and |p| = |q_i - q_j| = 4, so that
    sigma(-x) |v| = 4.5e-7 lies under the guard's 1e-6 for both rows."""
    P = np.array([[4.0, 0.0, 0.0]], dtype=dt)
    Q = np.array([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dt)
    return P, Q


def keep_one_per_row(mask, rng):
    """Keep one random True per row of the boolean matrix ``mask`` (in place): at most
    one test item per user, as the leave-one-out protocol needs."""
    for u in range(mask.shape[0]):
        its = np.flatnonzero(mask[u])
        mask[u] = False
        if len(its):
            mask[u, rng.choice(its)] = True


def num_grad(f, *arrays, h=1e-6):
    """Central differences of the scalar ``f(*arrays)`` w.r.t. every element of every array
    (float64 copies; one list entry per array)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + h
            fp = f(*arrays)
            a[idx] = old - h
            fm = f(*arrays)
            a[idx] = old
            g[idx] = (fp - fm) / (2.0 * h)
        grads.append(g)
    return grads
