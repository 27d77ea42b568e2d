"""Shared fixtures: the real data folder (skipped when absent), small synthetic sets.

Real data lives in ``../shared/data`` relative to the repository root (CI clones
the repository with ``shared/`` beside it); it is never copied into the repo.
Tests that read it are marked ``@pytest.mark.realdata`` and skip with a message
when the folder is missing.
"""
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, settings

from aprnb.data import leave_one_out, load_lastfm, load_lightgcn, make_synthetic

#: ``<repo>/../shared/data``
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# JIT compilation makes the first example of a property slow; deadlines would flake.
settings.register_profile("aprnb", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("aprnb")


def real_data_dir(name):
    """``SHARED_DATA / name``, or skip the test with a message saying where it looked."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real data set {name!r} not found at {folder} (expected the shared/ "
                    f"folder beside the repository); skipping real-data test")
    return folder


@pytest.fixture(scope="session")
def shared_data():
    """The shared data folder; skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}; skipping real-data test")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gowalla():
    """The LightGCN Gowalla split as an :class:`aprnb.data.Dataset` (loaded once)."""
    return load_lightgcn(real_data_dir("gowalla"))


@pytest.fixture(scope="session")
def lastfm():
    """The LightGCN-PyTorch Last.fm split as an :class:`aprnb.data.Dataset` (loaded once)."""
    return load_lastfm(real_data_dir("lastfm"))


@pytest.fixture(scope="session")
def synthetic():
    """A small planted-structure data set: 600 users x 300 items."""
    return make_synthetic(n_users=600, n_items=300, random_state=0)


@pytest.fixture(scope="session")
def synthetic_loo(synthetic):
    """``(train, test)``: leave-one-out split of :func:`synthetic` (seed 0)."""
    return leave_one_out(synthetic, random_state=0)


@pytest.fixture(scope="session")
def small_synthetic():
    """A tiny data set for fast model-contract checks: 120 users x 60 items."""
    return make_synthetic(n_users=120, n_items=60, n_groups=4, mean_degree=8,
                          random_state=1)


@pytest.fixture
def tiny():
    """A hand-written 4 x 6 interaction matrix: user 3 has no interactions."""
    dense = np.array([[1, 0, 1, 0, 0, 1],
                      [0, 1, 0, 0, 1, 0],
                      [1, 1, 1, 1, 0, 0],
                      [0, 0, 0, 0, 0, 0]], dtype=np.float32)
    return sp.csr_matrix(dense)


# -- the 30 x 20 set of the input-check suites (fitted models are snapshotted around each bad
#    call and compared bitwise afterwards; see tests/checks.py) -----------------------------------
@pytest.fixture(scope="module")
def X():
    """30 users x 20 items with planted structure."""
    return make_synthetic(n_users=30, n_items=20, n_groups=2, mean_degree=4, random_state=0)


@pytest.fixture(scope="module")
def split(X):
    """``(train, test)``: leave-one-out split of :func:`X` (seed 0)."""
    return leave_one_out(X, random_state=0)


@pytest.fixture(params=["BPR", "APR", "ItemPop"])
def fitted(request, split):
    """A freshly fitted model of each class (Adagrad, so optimizer state exists)."""
    import aprnb
    from checks import fit_fast
    return fit_fast(getattr(aprnb, request.param), split[0])


@pytest.fixture
def bpr(split):
    """A BPR fitted on ``split[0]`` with the FAST settings of tests/checks.py."""
    from aprnb import BPR
    from checks import fit_fast
    return fit_fast(BPR, split[0])


@pytest.fixture
def lightgcn_folder(tmp_path):
    """A toy LightGCN folder (train.txt, test.txt) in ``tmp_path``; user 2 has no training item."""
    from checks import write
    write(tmp_path / "train.txt", "0 1 2 3\n1 0 4\n2\n3 5 1\n\n")
    write(tmp_path / "test.txt", "0 4\n1 2\n2 5 0\n3 0\n")
    return tmp_path
