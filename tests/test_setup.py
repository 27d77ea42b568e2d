"""Fit set-up: the blocked initial draw and the overlapped filter give the same start."""
import numpy as np
import pytest
import scipy.sparse as sp

from aprnb import BPR
from aprnb.kernels.sampling import build_filter
from aprnb.models._factor import normal_factors


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 5, 64, 1 << 20])
def test_normal_factors_equal_the_one_shot_draw(dt, block):
    # The initial factors must be the numbers fit drew before blocking (whole-table
    # float64 draw, scaled, then cast), whatever the block size.
    a = normal_factors(np.random.default_rng(11), 37, 6, 0.01, dt, block_draws=block)
    b = (np.random.default_rng(11).standard_normal((37, 6)) * 0.01).astype(dt)
    assert a.dtype == dt
    np.testing.assert_array_equal(a, b)


def test_fit_starts_from_the_one_shot_draw_and_builds_the_filter_once():
    rng = np.random.default_rng(0)
    X = sp.random(400, 300, density=0.05, format="csr", random_state=rng)
    m = BPR(factors=8, epochs=0, random_state=5, show_progress=False).fit(X)
    g = np.random.default_rng(5)
    np.testing.assert_array_equal(
        m.user_factors_, (g.standard_normal((400, 8)) * 0.01).astype(np.float32))
    np.testing.assert_array_equal(
        m.item_factors_, (g.standard_normal((300, 8)) * 0.01).astype(np.float32))
    run = m._training(m.train_, None)
    T = m.train_
    np.testing.assert_array_equal(run.filt, build_filter(T.indptr, T.indices, 300))
    assert run.filt.flags.c_contiguous and run.filt.dtype == np.uint64


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_large_tables_are_drawn_in_parallel_blocks_independent_of_threads(dt):
    from aprnb.models._factor import PARALLEL_DRAW
    rows, cols = PARALLEL_DRAW // 16 + 3, 16           # just above the threshold
    one = normal_factors(np.random.default_rng(3), rows, cols, 0.5, dt, block_draws=1 << 16,
                         n_threads=1)
    two = normal_factors(np.random.default_rng(3), rows, cols, 0.5, dt, block_draws=1 << 16,
                         n_threads=2)
    assert one.dtype == dt and one.shape == (rows, cols)
    np.testing.assert_array_equal(one, two)
    assert abs(one.mean()) < 1e-3 and abs(one.std() - 0.5) < 1e-3
    step = (1 << 16) // cols
    assert not np.array_equal(one[:step], one[step:2 * step])       # a stream per block
    other = normal_factors(np.random.default_rng(4), rows, cols, 0.5, dt, block_draws=1 << 16)
    assert not np.array_equal(one[:10], other[:10])                  # seeded by rng


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
@pytest.mark.parametrize("warm", [False, True], ids=["drawn", "warm-start-from-itself"])
def test_ctrl_c_in_the_first_epoch_puts_the_starting_state_back(optimizer, warm, monkeypatch):
    # Set-up makes no second copy of the start: the kernels' tables are it until the
    # first epoch ends. A Ctrl-C that lands in the first epoch's kernel must still
    # leave the model at the start (drawn again, or copied again from init).
    import aprnb.models._training as training
    X = sp.random(300, 200, density=0.05, format="csr", random_state=np.random.default_rng(1))
    kw = dict(factors=8, optimizer=optimizer, random_state=3, n_threads=1, show_progress=False)
    m = BPR(epochs=2, **kw)
    if warm:
        m.fit(X)
        start = (m.user_factors_.copy(), m.item_factors_.copy(),
                 [a.copy() for a in m.optimizer_state_] if optimizer == "adagrad" else None)
    else:
        ref = BPR(epochs=0, **kw).fit(X)
        start = (ref.user_factors_, ref.item_factors_, ref.optimizer_state_)
    real = training._kernel

    def interrupted(*args):
        kernel = real(*args)

        def run(*a, **k):
            kernel(*a, **k)                     # the arrays change, then Ctrl-C arrives
            raise KeyboardInterrupt
        return run

    monkeypatch.setattr(training, "_kernel", interrupted)
    with pytest.warns(RuntimeWarning, match="0 completed"), pytest.raises(KeyboardInterrupt):
        m.fit(X, init=m if warm else None)
    np.testing.assert_array_equal(m.user_factors_, start[0])
    np.testing.assert_array_equal(m.item_factors_, start[1])
    if optimizer == "adagrad":
        for a, b in zip(m.optimizer_state_, start[2]):
            np.testing.assert_array_equal(a, b)
    assert m.history_ == []
