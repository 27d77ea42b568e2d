"""Thread counts: n_threads above the available threads, workers that stop after an error."""
import threading
import time

import numba
import numpy as np
import pytest

import aprnb
from aprnb import APR, BPR
from aprnb._threads import MAX_THREADS


def test_n_threads_above_the_available_threads_works(small_synthetic):
    """A thread count above the available threads is honoured, not rejected: n_threads=2
    on one core runs 2 data slices with their RNG streams on 1 thread, which is then the
    serial replay of the 2-thread run."""
    n = numba.config.NUMBA_NUM_THREADS + 1
    train, test = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    for cls in (BPR, APR):
        model = cls(factors=4, epochs=2, n_threads=n, random_state=0,
                    show_progress=False).fit(train)
        assert np.all(np.isfinite(model.user_factors_))
        assert np.all(np.isfinite(model.item_factors_))
        if numba.config.NUMBA_NUM_THREADS == 1:
            replay = cls(factors=4, epochs=2, n_threads=1, n_slices=n, random_state=0,
                         show_progress=False).fit(train)
            np.testing.assert_array_equal(model.user_factors_, replay.user_factors_)
        users = np.arange(train.shape[0])
        for a, b in zip(model.recommend(users, k=5, n_threads=n),
                        model.recommend(users, k=5, n_threads=1)):
            np.testing.assert_array_equal(a, b)
        assert aprnb.evaluate(model, train, test, k=5, n_threads=n) == \
            aprnb.evaluate(model, train, test, k=5, n_threads=1)


def test_evaluation_workers_stop_after_an_error():
    from aprnb._threads import run_tasks
    done = []
    lock = threading.Lock()

    def work(task, worker):
        if task == 0:
            raise RuntimeError("boom")
        time.sleep(0.01)
        with lock:
            done.append(task)
    with pytest.raises(RuntimeError, match="boom"):
        run_tasks(2, 200, work)
    assert len(done) < 20, len(done)      # the other worker stopped at its next task


def _bpr(**kw):
    args = dict(factors=16, epochs=6, random_state=0, show_progress=False, n_threads=1)
    return BPR(**{**args, **kw})


def test_slices_not_threads_decide_the_result(synthetic_loo):
    """With one thread, the result depends on the seed and the slice count only: it is
    bitwise reproducible for any slice count, and the slice count changes it."""
    train, _ = synthetic_loo
    a = _bpr(n_slices=3).fit(train).user_factors_
    b = _bpr(n_slices=3).fit(train).user_factors_
    c = _bpr(n_slices=1).fit(train).user_factors_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kw,error", [(dict(n_threads=MAX_THREADS + 1), ValueError),
                                      (dict(n_slices=MAX_THREADS + 1), ValueError),
                                      (dict(n_slices=0), ValueError),
                                      (dict(n_slices=2.0), TypeError)])
def test_absurd_thread_and_slice_counts(synthetic_loo, kw, error):
    with pytest.raises(error, match="n_threads|n_slices"):
        _bpr(**kw).fit(synthetic_loo[0])
