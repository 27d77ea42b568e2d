"""The machine a measurement ran on: CPU, cores, BLAS, Numba, NumPy and Python.

Shared by ``aprnb bench`` (:mod:`aprnb.benchmark`) and the repository's ``bench/``
scripts, so that both describe a machine the same way. Reading ``/proc`` is
guarded: on other systems the CPU comes from :func:`platform.processor`.
"""
import os
import platform

import numba
import numpy as np
import scipy
from threadpoolctl import threadpool_info


def _proc_cpuinfo_field(prefix):
    """The value of the first ``/proc/cpuinfo`` line starting with ``prefix``, or None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``; elsewhere the platform's description)."""
    return (_proc_cpuinfo_field("model name") or platform.processor() or platform.machine()
            or "unknown")


def cpu_flags():
    """Which of the SIMD extensions avx2, fma and avx512f the CPU reports (Linux only)."""
    flags = set((_proc_cpuinfo_field("flags") or "").split())
    return [f for f in ("avx2", "fma", "avx512f") if f in flags]


def usable_cores():
    """Cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _owner(filepath):
    """"numpy" or "scipy" when a library file lies in that package's folder (its
    wheels bundle their own BLAS in ``numpy.libs``/``scipy.libs``), else None."""
    for folder in reversed(os.path.normpath(filepath or "").split(os.sep)[:-1]):
        if folder.split(".")[0] in ("numpy", "scipy"):
            return folder.split(".")[0]
    return None


def blas():
    """The BLAS libraries loaded in this process (NumPy's matmul uses NumPy's).

    One ``"[numpy: ]<library> <version> (<threading>, <n> threads, <architecture>)"``
    per library as threadpoolctl sees it, NumPy's first, joined with ``"; "``;
    ``"unknown"`` when threadpoolctl finds none.
    """
    found = []
    for d in threadpool_info():
        if d.get("user_api") != "blas":
            continue
        owner = _owner(d.get("filepath"))
        found.append((owner != "numpy", f"{owner + ': ' if owner else ''}"
                      f"{d.get('internal_api')} {d.get('version')} ({d.get('threading_layer')}, "
                      f"{d.get('num_threads')} threads, {d.get('architecture')})"))
    return "; ".join(text for _, text in sorted(found)) or "unknown"


def threading_layer():
    """Numba's threading layer, once a parallel kernel has run; else ``"not chosen yet"``."""
    try:
        return numba.threading_layer()
    except ValueError:
        return "not chosen yet"


def describe():
    """Dict of the facts a reader of a measurement needs (see ``docs/usage.md``)."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
            "simd": ",".join(cpu_flags()), "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "numba_threading_layer": threading_layer(), "numba": numba.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "blas": blas(),
            "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}"}
