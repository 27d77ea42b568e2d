"""bench/scaling.py: the synthetic sets it draws, and its 1M run (what CI runs of it)."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bench.scaling import SIZES, synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sigma", [None, 1.0])
def test_synthetic_sets_are_canonical_disjoint_and_seeded(sigma):
    X, T = synthetic(3000, 800, 60_000, 4, sigma=sigma)
    X2, _ = synthetic(3000, 800, 60_000, 4, sigma=sigma)
    assert (X != X2).nnz == 0
    assert X.shape == T.shape == (3000, 800)
    for M in (X, T):
        assert M.indices.dtype == np.int32 and np.all(M.data == 1)
        M2 = M.copy()
        M2.sum_duplicates()
        M2.sort_indices()
        assert np.array_equal(M2.indices, M.indices)       # sorted, no duplicates
    assert X.multiply(T).nnz == 0                             # train and test disjoint
    assert 0.03 < T.nnz / (X.nnz + T.nnz) < 0.07
    deg = np.diff((X + T).indptr)
    assert deg.min() >= 1 and deg.max() <= 400    # 2+ drawn (dups merged), half the items at most
    item = np.bincount(X.indices, minlength=800)
    assert np.sort(item)[-8:].sum() > 8 * 4 * item.mean()     # Zipf: a popular head


def test_lognormal_users_are_more_skewed_than_geometric():
    deg = {s: np.diff(synthetic(5000, 4000, 250_000, 1, sigma=s)[0].indptr) for s in (None, 1.0)}
    top = {s: np.sort(d)[-50:].sum() / d.sum() for s, d in deg.items()}
    assert top[1.0] > 1.5 * top[None]


def test_the_ladder_reaches_100m_with_2m_users_and_500k_items():
    assert SIZES["100M"][:2] == (2_000_000, 500_000) and SIZES["100M"][2] >= 100_000_000
    assert SIZES["20.7M"] == (1_000_000, 1_000_000, 22_000_000, None)   # the older set


@pytest.mark.slow
def test_quick_run_reports_the_1m_row():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "bench.scaling", "--quick", "--runs", "1",
                          "--epochs", "2", "--eval-users", "200"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith("1M ")]
    assert len(rows) == 2                                     # the scaling and time tables
    nnz = int(rows[0][2].replace(",", ""))
    assert 900_000 < nnz < 1_200_000
    setup, bpr = (float(rows[0][k].split()[0]) for k in (3, 4))
    assert 0 < setup < 60 and 0 < bpr < 60
    assert 0 < float(rows[0][-2]) < 10_000                    # peak bytes per interaction
