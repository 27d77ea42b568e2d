"""Numba kernels: per-triple steps, epoch loops, sampling, top-K and attacks.

Kernels take arrays and scalars only; the model classes in :mod:`aprnb.models`
validate, allocate, seed and loop over epochs.
"""
import glob as _glob
import hashlib as _hashlib
import os as _os


def _drop_stale_cache():
    """Delete cached compiled kernels when any kernel source file has changed.

    Numba keys each cached function on its own file only, but the epoch kernels
    inline functions from the other modules here; after an edit to ``bpr.py``
    alone, a cached ``epoch_serial`` would silently run the old step. A hash of
    all kernel sources, stamped beside the cache, removes that hazard. Only the
    default cache location (``__pycache__`` here) is managed; errors (read-only
    installs) are ignored.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        digest = _hashlib.sha256()
        for path in sorted(_glob.glob(_os.path.join(here, "*.py"))):
            with open(path, "rb") as fh:
                digest.update(fh.read())
        cache = _os.path.join(here, "__pycache__")
        stamp = _os.path.join(cache, "aprnb-kernels.sha256")
        old = open(stamp).read() if _os.path.exists(stamp) else ""
        if old != digest.hexdigest():
            for f in _glob.glob(_os.path.join(cache, "*.nbi")) + \
                    _glob.glob(_os.path.join(cache, "*.nbc")):
                _os.remove(f)
            _os.makedirs(cache, exist_ok=True)
            with open(stamp, "w") as fh:
                fh.write(digest.hexdigest())
    except OSError:
        pass


_drop_stale_cache()

from ._math import sigmoid, softplus  # noqa: E402
from .apr import apr_step, apr_step_adagrad, apr_step_given
from .bpr import bpr_step, bpr_step_adagrad
from .epoch import MODE_APR, MODE_APR_RANDOM, MODE_BPR, all_finite, epoch_parallel, epoch_serial
from .sampling import sample_negative, sample_negatives

__all__ = [
    "sigmoid", "softplus", "bpr_step", "bpr_step_adagrad", "apr_step", "apr_step_adagrad",
    "apr_step_given", "epoch_serial", "epoch_parallel", "all_finite", "sample_negative",
    "sample_negatives", "MODE_BPR", "MODE_APR", "MODE_APR_RANDOM",
]
