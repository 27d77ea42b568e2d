"""The one room that compiles the kernels: flag set, decorators, twins and cache care.

No other kernel module calls :func:`numba.njit`; they use the decorators here,
so that the compile policy is stated once (``tests/test_jit.py`` checks both).

Policy
------
* ``FASTMATH``: LLVM fast-math flags for every floating-point kernel:
  re-association (so that dot products and reductions vectorise) and FMA
  contraction, but *not* ``nnan``/``ninf``, so NaN and infinity keep their IEEE
  meaning and the per-epoch divergence check works. Never blanket
  ``fastmath=True``.
* ``error_model="numpy"``: a float division by zero gives inf/NaN (caught by the
  finiteness check) instead of a per-element ``ZeroDivisionError`` test, which
  would stop the compiler from vectorising loops that divide (the Adagrad
  updates).
* ``cache=True`` everywhere; see :func:`drop_stale_cache` for the one hazard.

Decorators: :func:`kernel` (a compiled entry point), :func:`inline` (a helper
inlined into its callers at Numba IR level), :func:`integer` (integer-only
helpers, compiled without fast-math and with the default error model, as the
random-number and hashing code always has been) and :func:`twin` (one Python
function compiled serially and with ``parallel=True``).
"""
import glob
import hashlib
import os
import types

from numba import njit

FASTMATH = frozenset({"reassoc", "contract"})
_FLOAT = {"cache": True, "fastmath": set(FASTMATH), "error_model": "numpy"}

#: ``kernel(refcount=False)`` compiles with Numba's private ``_nrt=False``
#: option: no reference counting. The epoch kernel inlines helpers that take
#: whole arrays, and Numba otherwise wraps every inlined call in atomic
#: increments and decrements of the arrays' reference counts (about 30 per
#: triple); they halved the single-thread speed and, since all threads count
#: references on the same ``P`` and ``Q``, serialised the Hogwild threads. The
#: same holds for the evaluation kernels that run on several Python threads at
#: once. Allowed only for functions that allocate nothing (no arrays, no
#: slices that outlive the call) and whose caller holds every array it passes.
#: ``tests/test_jit.py`` checks on the installed Numba that the option still
#: removes the ``NRT_incref``/``NRT_decref`` calls.
NO_REFCOUNT = {"_nrt": False}


def _apply(fn, options):
    return njit(**options) if fn is None else njit(**options)(fn)


def kernel(fn=None, *, refcount=True, nogil=False, parallel=False):
    """Compile ``fn`` as a cached kernel with the project's flag set.

    Parameters
    ----------
    fn : callable, optional
        The function; without it, return a decorator.
    refcount : bool, default True
        ``False`` compiles without reference counting (see :data:`NO_REFCOUNT`).
    nogil : bool, default False
        Release the GIL while running (kernels run on Python worker threads).
    parallel : bool, default False
        Compile ``prange`` loops in parallel. Use :func:`twin` instead when the
        same function is also needed serially.
    """
    options = dict(_FLOAT)
    if not refcount:
        options.update(NO_REFCOUNT)
    if nogil:
        options["nogil"] = True
    if parallel:
        options["parallel"] = True
    return _apply(fn, options)


def inline(fn=None):
    """A cached helper with the flag set, always inlined into its callers.

    Inlining happens on Numba IR, so the body is compiled with the flags of
    the kernel it lands in; the flags here only matter for direct calls.
    """
    return _apply(fn, dict(_FLOAT, inline="always"))


def integer(fn=None, *, inline=False):
    """A cached integer-only helper: no fast-math, default error model.

    The random-number streams, hashing and the filter fill are integer code;
    they keep the options they were validated with.
    """
    options = {"cache": True}
    if inline:
        options["inline"] = "always"
    return _apply(fn, options)


def _clone(fn, name):
    """A copy of the function ``fn`` under the name ``name`` (same code and globals)."""
    out = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    out.__qualname__ = name
    out.__doc__ = fn.__doc__
    out.__module__ = fn.__module__
    return out


def twin(fn, serial_name, parallel_name, nogil=False):
    """One Python function compiled twice: serially and with ``parallel=True``.

    Returns ``(serial, parallel)`` dispatchers, both cached and with the flag
    set. Numba names a cached function's files after its ``__qualname__`` and
    keys the entries by signature only, not by compile options. Compiling one
    function twice with ``cache=True`` would therefore make both dispatchers
    share one cache entry, and after a reload both would run whichever version
    was saved last (the "parallel" epoch silently ran on one thread). Each
    compilation therefore gets a clone of ``fn`` under its own name.
    ``tests/test_jit.py`` checks, after a cache reload in a fresh process, that
    the parallel twin still calls the parallel scheduler and the serial one
    does not. ``nogil=True`` releases the GIL in both (for kernels run on a
    Python worker thread).
    """
    options = dict(_FLOAT, nogil=True) if nogil else _FLOAT
    serial = njit(**options)(_clone(fn, serial_name))
    parallel = njit(parallel=True, **options)(_clone(fn, parallel_name))
    return serial, parallel


def recompile(dispatcher, **changes):
    """An uncached copy of a dispatcher with some options changed (for tests).

    ``recompile(run_chunk, _nrt=True)`` compiles the same Python function with
    reference counting, to compare its code with the kernel's.
    """
    options = dict(dispatcher.targetoptions, cache=False)
    options.pop("nopython", None)             # implied by njit
    options.update(changes)
    return njit(**options)(_clone(dispatcher.py_func, dispatcher.py_func.__name__ + "_copy"))


def drop_stale_cache(here=os.path.dirname(os.path.abspath(__file__))):
    """Delete cached compiled kernels when any kernel source file has changed.

    Numba keys each cached function on its own file only, but the epoch kernels
    inline functions from the other modules here; after an edit to ``bpr.py``
    alone, a cached ``epoch_serial`` would silently run the old step. A hash of
    all kernel sources, stamped beside the cache, removes that hazard. Only the
    default cache location (``__pycache__`` here) is managed; errors (read-only
    installs) are ignored. Runs once, when this module is imported.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        digest = hashlib.sha256()
        for path in sorted(glob.glob(os.path.join(here, "*.py"))):
            with open(path, "rb") as fh:
                digest.update(fh.read())
        cache = os.path.join(here, "__pycache__")
        stamp = os.path.join(cache, "aprnb-kernels.sha256")
        old = ""
        if os.path.exists(stamp):
            with open(stamp) as fh:
                old = fh.read()
        if old != digest.hexdigest():
            for f in glob.glob(os.path.join(cache, "*.nbi")) + \
                    glob.glob(os.path.join(cache, "*.nbc")):
                os.remove(f)
            os.makedirs(cache, exist_ok=True)
            with open(stamp, "w") as fh:
                fh.write(digest.hexdigest())
    except OSError:
        pass


drop_stale_cache()
