"""Thread-count handling for Numba parallel kernels."""
import concurrent.futures
import contextlib
import numbers
import threading

import numba
from threadpoolctl import threadpool_limits


def max_threads():
    """The threads Numba was started with (``NUMBA_NUM_THREADS``, by default the cores)."""
    return numba.config.NUMBA_NUM_THREADS


#: The most threads (or data slices) aprnb accepts: far above any machine's cores,
#: small enough that the per-thread buffers of a kernel stay small.
MAX_THREADS = 1024


def check_n_threads(n_threads, name="n_threads"):
    """The thread count asked for: None -> all of Numba's threads, else a positive int.

    A count above :func:`max_threads` is accepted: work that is split into
    ``n_threads`` parts (the data slices of a training epoch, the blocks of an
    evaluation) keeps that split and runs on the threads there are
    (:func:`numba_threads`, :func:`run_tasks`), so results do not depend on the
    machine.
    """
    if n_threads is None:
        return max_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"{name} must be None or a positive int, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"{name} must be >= 1 (or None for all {max_threads()} cores), "
                         f"got {n_threads}")
    if n_threads > MAX_THREADS:
        raise ValueError(f"{name}={n_threads} exceeds the {MAX_THREADS} aprnb supports (this "
                         f"machine runs {max_threads()} threads); pass at most {MAX_THREADS}")
    return int(n_threads)


def running_threads(n_threads):
    """Threads that actually run ``n_threads`` parts: at most :func:`max_threads`."""
    return max(1, min(int(n_threads), max_threads()))


@contextlib.contextmanager
def numba_threads(n):
    """Run the body on ``min(n, max_threads())`` Numba threads, restoring the old value."""
    old = numba.get_num_threads()
    numba.set_num_threads(running_threads(n))
    try:
        yield
    finally:
        numba.set_num_threads(old)


@contextlib.contextmanager
def single_threaded_blas():
    """Limit the BLAS library (numpy's matmul) to one thread in the body.

    The evaluation runs whole blocks of users on its own threads; a BLAS
    library that also starts threads would put two thread pools on the same
    cores, whose spinning workers slowed a 2-thread evaluation down several-fold.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_tasks(n_threads, n_tasks, work):
    """Call ``work(task, worker)`` for every task on ``n_threads`` threads.

    Worker ``w`` takes the tasks ``w, w + n_threads, ...`` in order; ``work``
    must release the GIL for its heavy parts (numpy's matmul, ``nogil`` kernels).
    After the first exception of any worker (or a Ctrl-C here) the workers stop
    before their next task, and an exception is raised here.
    """
    n_threads = max(1, min(running_threads(n_threads), n_tasks))
    if n_threads == 1:
        for task in range(n_tasks):
            work(task, 0)
        return

    stop = threading.Event()          # set on the first error or on Ctrl-C

    def worker(w):
        try:
            for task in range(w, n_tasks, n_threads):
                if stop.is_set():
                    return
                work(task, w)
        except BaseException:
            stop.set()
            raise

    with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(worker, w) for w in range(n_threads)]
        try:
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        finally:
            stop.set()                # Ctrl-C while waiting: let the workers stop early
        for fut in futures:
            fut.result()
