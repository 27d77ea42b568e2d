"""``aprnb bench`` / :func:`aprnb.benchmark.run_benchmark`: the documented JSON keys, numbers
that agree with each other, the text table, and clear errors for bad options.

The command runs once per module on a tiny synthetic set (a few seconds once the
kernels are in Numba's cache).
"""
import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from aprnb import _machine, benchmark
from aprnb._threads import max_threads
from aprnb._timing import Stats
from aprnb.cli import main

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"
THREADS = [1, 2] if max_threads() >= 2 else [1]
TINY = ["--users", "300", "--items", "200", "--interactions", "5000", "--eval-users", "60",
        "--repeats", "3", "--threads", ",".join(map(str, THREADS)), "--seed", "1"]

#: the documented keys (module docstring of aprnb/benchmark.py and docs/usage.md)
TOP = {"aprnb_version", "machine", "data", "settings", "train", "evaluate", "warmup_s",
       "seconds"}
MACHINE = {"cpu", "cores", "usable_cores", "simd", "numba_threads", "numba_threading_layer",
           "numba", "numpy", "scipy", "blas", "python", "platform"}
DATA = {"users", "items", "interactions", "test_interactions", "factors", "dtype"}
SETTINGS = {"quick", "repeats", "threads", "seed"}
TRAIN = {"model", "optimizer", "batch_size", "threads", "epochs", "triples_per_s", "epoch_s",
         "setup_s"}
EVALUATE = {"threads", "users", "k", "top_k_users_per_s", "matmul_users_per_s",
            "top_k_gflop_per_s", "matmul_gflop_per_s", "ratio"}
SPREAD = {"median", "min", "max"}


def run(argv):
    """``(exit code, stdout, stderr)`` of ``main(argv)`` (argparse exits included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(exit code, stdout, stderr, JSON written, its path)`` of a tiny
    ``bench --quick --json PATH``."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    code, out, err = run(["bench", "--quick", "--json", path] + TINY)
    return code, out, err, json.loads(path.read_text()) if path.exists() else None, path


def _positive_finite(x, where):
    assert isinstance(x, (int, float)) and not isinstance(x, bool), where
    assert math.isfinite(x) and x > 0, f"{where} = {x}"


def _spread(s, where):
    assert set(s) == SPREAD, where
    for k in SPREAD:
        _positive_finite(s[k], f"{where}.{k}")
    assert s["min"] <= s["median"] <= s["max"], where


def test_bench_quick_json_writes_the_documented_keys(tiny):
    code, _, err, res, _ = tiny
    assert code == 0, err
    assert set(res) == TOP
    assert set(res["machine"]) == MACHINE and set(res["data"]) == DATA
    assert set(res["settings"]) == SETTINGS
    assert res["settings"] == {"quick": True, "repeats": 3, "threads": THREADS, "seed": 1}
    assert res["data"]["factors"] == 64 and res["data"]["dtype"] == "float32"
    assert (res["data"]["users"], res["data"]["items"]) == (300, 200)
    for key in ("warmup_s", "seconds"):
        _positive_finite(res[key], key)
    for row in res["train"]:
        assert set(row) == TRAIN
        assert row["epochs"] == 3
        for key in ("triples_per_s", "epoch_s"):
            _spread(row[key], f"train {row['model']} {key}")
        assert math.isfinite(row["setup_s"]) and row["setup_s"] >= 0
    for row in res["evaluate"]:
        assert set(row) == EVALUATE
        for key in EVALUATE - {"threads", "users", "k", "ratio"}:
            _spread(row[key], f"evaluate {key}")
        _positive_finite(row["ratio"], "ratio")


def test_bench_rows_cover_every_model_and_thread_count(tiny):
    res = tiny[3]
    rows = [(r["model"], r["optimizer"], r["batch_size"], r["threads"]) for r in res["train"]]
    # --quick: no mini-batch row (its compilation would not fit a first run's minute)
    assert rows == [(m, o, 1, t) for t in THREADS
                    for m, o in (("BPR", "sgd"), ("APR", "sgd"), ("APR", "adagrad"))]
    assert [r["threads"] for r in res["evaluate"]] == THREADS
    assert all(r["users"] == 60 and r["k"] == 20 for r in res["evaluate"])


def test_bench_numbers_agree_with_each_other(tiny):
    """Rates are work / time: triples per second x seconds per epoch = the epoch's
    triples (medians of 3 samples: the same sample), and the ratio and GFLOP/s follow."""
    res = tiny[3]
    d = res["data"]
    train, test = benchmark.synthetic_split(300, 200, 5000, 1)
    assert (d["interactions"], d["test_interactions"]) == (train.nnz, test.nnz)
    for r in res["train"]:
        for a, b in (("median", "median"), ("min", "max"), ("max", "min")):
            assert r["triples_per_s"][a] * r["epoch_s"][b] == pytest.approx(train.nnz)
    flop = 2 * d["items"] * d["factors"] / 1e9
    for r in res["evaluate"]:
        assert r["ratio"] == pytest.approx(r["matmul_users_per_s"]["median"]
                                           / r["top_k_users_per_s"]["median"])
        for kind in ("top_k", "matmul"):
            assert r[f"{kind}_gflop_per_s"]["median"] == pytest.approx(
                r[f"{kind}_users_per_s"]["median"] * flop)


def test_bench_prints_a_row_per_model_and_thread_count(tiny):
    code, out, err, res, path = tiny
    assert res["machine"]["cpu"] in out and "BLAS:" in out
    for r in res["train"]:
        name = f"{r['model']} {r['optimizer']}"
        line = f"{name:<22}{r['threads']:>8}"
        assert sum(ln.startswith(line) for ln in out.splitlines()) == 1, (line, out)
    ev = [ln for ln in out.splitlines() if ln.startswith("evaluate vs matmul")]
    assert [int(ln.split()[3]) for ln in ev] == THREADS
    assert out.rstrip().endswith(f"wrote {path}")
    assert "compiling the kernels" in err


def test_bench_json_without_path_prints_only_json(capsys):
    code, out, err = run(["bench", "--quick", "--json"] + TINY[:-4] + ["--threads", "1"])
    assert code == 0, err
    res = json.loads(out)                    # the whole of stdout is one JSON object
    assert set(res) == TOP and [r["threads"] for r in res["evaluate"]] == [1]


def test_every_key_is_documented_in_usage():
    section = USAGE.read_text().split("## Benchmarking your machine", 1)[1].split("\n## ")[0]
    documented = set(re.findall(r"`(\w+)`", section))
    missing = (TOP | MACHINE | DATA | SETTINGS | TRAIN | EVALUATE | SPREAD) - documented
    assert not missing, f"docs/usage.md does not document {sorted(missing)}"


@pytest.mark.parametrize("extra, fragment", [
    (["--threads", "0"], "threads must be an integer >= 1, got 0"),
    (["--threads", "1,x"], "expected comma-separated thread counts"),
    (["--threads", str(max_threads() + 1)], "more than the"),
    (["--users", "-5"], "users must be an integer >= 1, got -5"),
    (["--items", "0"], "items must be an integer >= 1, got 0"),
    (["--interactions", "500"], "interactions must be >= 1000"),
    (["--interactions", "20000"], "at most a quarter of users x items"),
    (["--eval-users", "0"], "eval_users must be an integer >= 1"),
    (["--repeats", "0"], "repeats must be an integer >= 1"),
    (["--factors", "0"], "factors must be an integer >= 1"),
    (["--seed", "-1"], "random_state must be an integer >= 0"),
    (["--dtype", "float16"], "invalid choice"),
])
def test_bench_bad_options_exit_2_with_a_message(extra, fragment):
    code, out, err = run(["bench", "--quick"] + TINY + extra)
    assert code == 2, (code, err)
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_bench_json_into_a_missing_folder_fails_before_running(tmp_path):
    code, out, err = run(["bench", "--quick", "--json", tmp_path / "no" / "out.json"] + TINY)
    assert code == 1 and "does not exist" in err and "compiling" not in err
    assert out == ""


# ---------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------
def test_synthetic_split_is_seeded_disjoint_and_canonical():
    a_train, a_test = benchmark.synthetic_split(500, 300, 8000, 3)
    b_train, b_test = benchmark.synthetic_split(500, 300, 8000, 3)
    assert (a_train != b_train).nnz == 0 and (a_test != b_test).nnz == 0
    c_train, _ = benchmark.synthetic_split(500, 300, 8000, 4)
    assert (a_train != c_train).nnz > 0
    assert a_train.multiply(a_test).nnz == 0
    assert a_train.has_canonical_format and a_train.shape == (500, 300)
    assert 0.8 * 8000 < a_train.nnz + a_test.nnz <= 8000 * 1.2


def test_bare_matmul_scores_every_block():
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(50, 4)), rng.normal(size=(7, 4))
    users = np.arange(3, 40)
    S = benchmark.bare_matmul(P, Q, users, rows=16)      # blocks 16, 16, 5
    np.testing.assert_allclose(S, P[users[32:]] @ Q.T)


def test_default_threads_double_up_to_all_threads(monkeypatch):
    for most, want in ((1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])):
        monkeypatch.setattr(benchmark, "max_threads", lambda: most)
        assert benchmark.default_threads() == want
    monkeypatch.setattr(benchmark, "max_threads", lambda: 4)
    assert benchmark.check_threads([2, 1, 2]) == [2, 1]
    with pytest.raises(ValueError, match="more than the 4 thread"):
        benchmark.check_threads(5)
    with pytest.raises(ValueError, match="empty"):
        benchmark.check_threads([])
    with pytest.raises(TypeError, match="threads must be an integer"):
        benchmark.check_threads([1.5])


def test_machine_names_the_blas_of_numpy_first(monkeypatch):
    libs = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.30",
             "threading_layer": "pthreads", "num_threads": 2, "architecture": "Haswell",
             "filepath": "/x/site-packages/scipy.libs/libscipy_openblas.so"},
            {"user_api": "openmp", "filepath": "/x/libgomp.so"},
            {"user_api": "blas", "internal_api": "mkl", "version": "2024", "num_threads": 4,
             "threading_layer": "intel", "architecture": None,
             "filepath": "/x/site-packages/numpy/.libs/libmkl.so"}]
    monkeypatch.setattr(_machine, "threadpool_info", lambda: libs)
    assert _machine.blas() == ("numpy: mkl 2024 (intel, 4 threads, None); "
                               "scipy: openblas 0.3.30 (pthreads, 2 threads, Haswell)")
    monkeypatch.setattr(_machine, "threadpool_info", lambda: [])
    assert _machine.blas() == "unknown"
    assert set(_machine.describe()) == MACHINE


def test_stats_rates_and_summary():
    s = Stats([2.0, 4.0, 1.0])
    assert s.summary() == {"median": 2.0, "min": 1.0, "max": 4.0}
    assert s.per(8.0).summary() == {"median": 4.0, "min": 2.0, "max": 8.0}
    assert math.isnan(Stats().summary()["median"])


def test_full_run_adds_the_minibatch_row_at_each_thread_count():
    assert benchmark._rows([1, 2]) == [
        ("BPR", "sgd", 1, 1), ("APR", "sgd", 1, 1), ("APR", "adagrad", 1, 1),
        ("APR", "adagrad", 512, 1), ("BPR", "sgd", 1, 2), ("APR", "sgd", 1, 2),
        ("APR", "adagrad", 1, 2), ("APR", "adagrad", 512, 2)]
    assert all(b == 1 for _, _, b, _ in benchmark._rows([1, 2], minibatch=False))
