"""Thread counts: n_threads above the available threads, workers that stop after an error."""
import threading
import time

import numba
import numpy as np
import pytest

import aprnb
from aprnb import APR, BPR


def test_n_threads_above_the_available_threads_works(small_synthetic):
    # needs the _threads change: a thread count above the available threads is honoured
    # (n_threads=2 on one core runs 2 data slices and RNG streams on 1 thread), not rejected
    n = numba.config.NUMBA_NUM_THREADS + 1
    train, test = aprnb.data.leave_one_out(small_synthetic, random_state=0)
    for cls in (BPR, APR):
        model = cls(factors=4, epochs=2, n_threads=n, random_state=0,
                    show_progress=False).fit(train)
        assert np.all(np.isfinite(model.user_factors_))
        assert np.all(np.isfinite(model.item_factors_))
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
