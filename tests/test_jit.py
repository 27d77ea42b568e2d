"""The compilation room (``aprnb/kernels/_jit.py``) and its Numba tricks still work.

Every private Numba option or cache trick the kernels rely on is checked here on
the installed Numba: the serial/parallel twins after a cache reload, the
``_nrt=False`` exception, the portable prefetch intrinsic, and that no kernel
module compiles on its own.
"""
import ast
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from numba.core.registry import CPUDispatcher

import aprnb.kernels as kernels
from aprnb.kernels import _jit

KERNEL_DIR = Path(kernels.__file__).parent
ROOT = KERNEL_DIR.parents[1]


def _modules():
    return [importlib.import_module(f"aprnb.kernels.{m.name}")
            for m in pkgutil.iter_modules(kernels.__path__)]


def _dispatchers():
    for module in _modules():
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_only_jit_module_calls_njit():
    for path in sorted(KERNEL_DIR.glob("*.py")):
        if path.name == "_jit.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "numba":
                names = {a.name for a in node.names}
                assert not names & {"njit", "jit", "generated_jit", "vectorize"}, path.name
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("njit", "jit"), f"{path.name}: numba.{node.attr}"


def test_every_kernel_uses_the_flag_set():
    found = 0
    for name, disp in _dispatchers():
        found += 1
        opts = disp.targetoptions
        assert type(disp._cache).__name__ != "NullCache", f"{name}: not cached"
        fm = opts.get("fastmath", False)
        assert fm is not True, f"{name}: blanket fastmath"
        if fm:
            assert set(fm) == set(_jit.FASTMATH), name
            assert opts.get("error_model") == "numpy", name
        else:   # the integer-only helpers
            assert "error_model" not in opts, name
    assert found >= 30


def test_prange_only_in_parallel_kernels():
    # ``prange`` in a kernel compiled only serially is a plain ``range``: misleading.
    from aprnb.kernels import topk
    for name in ("push_tile", "topk_finish", "holdout_finish", "loo_block"):
        disp = getattr(topk, name)
        assert not disp.targetoptions.get("parallel"), name
        assert "prange" not in disp.py_func.__code__.co_names, name
    assert topk.sampled_block.targetoptions.get("parallel")


def test_twins_have_distinct_names_and_options():
    from aprnb.kernels.epoch import epoch_parallel, epoch_serial
    assert epoch_serial.py_func.__qualname__ != epoch_parallel.py_func.__qualname__
    assert epoch_serial.py_func.__code__ is epoch_parallel.py_func.__code__
    assert not epoch_serial.targetoptions.get("parallel")
    assert epoch_parallel.targetoptions.get("parallel")


_RELOAD_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba.np.ufunc import parallel as npar
    from aprnb.kernels import epoch_parallel, epoch_serial
    from aprnb.kernels._rng import seed_states
    from aprnb.kernels.sampling import build_filter

    indptr = np.array([0, 2, 3, 5], dtype=np.int64)
    indices = np.array([0, 2, 1, 0, 3], dtype=np.int64)
    users = np.repeat(np.arange(3), np.diff(indptr)).astype(np.int64)
    filt = build_filter(indptr, indices, 5)

    def run(fn):
        P = np.full((3, 4), 0.1)
        Q = np.full((5, 4), 0.2)
        states = seed_states(np.random.default_rng(0), 2)
        fn(P, Q, P[:0], Q[:0], filt, indptr, indices, users.copy(), indices.copy(), states,
           0.05, 0.0, 0.5, 1.0, 0, False, 2)
        return npar._is_initialized        # the parallel thread pool was started

    print(run(epoch_serial), run(epoch_parallel))
""")


def test_parallel_twin_is_parallel_after_cache_reload(tmp_path):
    # Fresh cache; the first process compiles and saves, the second loads. If the
    # twins shared a cache entry, the second run would execute the same code twice.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="2",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outs, stamps = [], []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _RELOAD_SCRIPT], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout.split())
        stamps.append({p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.epoch_*")})
    assert any("epoch_parallel" in p.name for p in stamps[0])
    assert any("epoch_serial" in p.name for p in stamps[0])
    assert stamps[0] == stamps[1], "second run recompiled instead of loading the cache"
    # serial twin: no parallel runtime; parallel twin: started the thread pool
    assert outs[0] == outs[1] == ["False", "True"], outs


def _nrt_calls(disp, sig):
    ir = disp.inspect_llvm(sig)
    return sum(ir.count(f"@{name}(") for name in ("NRT_incref", "NRT_decref"))


def test_no_refcount_option_still_removes_refcounting():
    # run_chunk inlines helpers taking whole arrays; with reference counting each
    # inlined call adds atomic increments/decrements (see _jit.NO_REFCOUNT).
    from aprnb.kernels.epoch import run_chunk
    assert run_chunk.targetoptions.get("_nrt") is False
    d, f = 4, np.float64
    P, Q = np.zeros((3, d), f), np.zeros((5, d), f)
    i64 = np.zeros(4, np.int64)
    args = (P, Q, P, Q, np.zeros(4, np.uint64), i64, i64, i64, i64, 0, 0,
            np.zeros(8, np.uint64), 0, 0.1, 0.0, 0.5, 1.0, 0, False, np.zeros((7, d), f),
            np.zeros(64, np.int64), np.zeros(0, f))       # last: VAT's per-user scale
    without = _jit.recompile(run_chunk)
    with_rc = _jit.recompile(run_chunk, _nrt=True)
    without(*args)
    with_rc(*args)
    assert _nrt_calls(without, without.signatures[0]) == 0
    assert _nrt_calls(with_rc, with_rc.signatures[0]) > 0


def test_prefetch_intrinsic_compiles_on_this_llvm():
    from aprnb.kernels._intrinsics import prefetch
    from numba import njit    # test-only compile, outside the kernel modules

    @njit
    def touch(A):
        prefetch(A, 1, 0)
        return A[1, 0]

    A = np.arange(6.0).reshape(3, 2)
    assert touch(A) == 2.0
    ir = touch.inspect_llvm(touch.signatures[0])
    assert "llvm.prefetch.p0" in ir
