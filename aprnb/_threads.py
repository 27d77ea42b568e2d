"""Thread-count handling for Numba parallel kernels."""
import contextlib
import numbers

import numba


def max_threads():
    return numba.config.NUMBA_NUM_THREADS


def check_n_threads(n_threads):
    """None -> all Numba threads; otherwise an int in [1, NUMBA_NUM_THREADS]."""
    if n_threads is None:
        return max_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be None or a positive int, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1 (or None for all {max_threads()} cores), "
                         f"got {n_threads}")
    if n_threads > max_threads():
        raise ValueError(f"n_threads={n_threads} exceeds the {max_threads()} threads Numba "
                         f"was started with; pass at most {max_threads()} or set "
                         f"NUMBA_NUM_THREADS before importing aprnb")
    return int(n_threads)


@contextlib.contextmanager
def numba_threads(n):
    """Run the body with ``numba.set_num_threads(n)``, restoring the old value."""
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)
