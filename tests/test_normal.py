"""The ziggurat behind large initial draws (``aprnb.kernels.normal``) is a standard normal.

The checks are exact tests at a fixed seed: a Kolmogorov-Smirnov test of the
whole law, a chi-square test on 400 narrow bins (the wedges of the ziggurat are
about 1% of the mass: a wrong wedge test shifts the bins near the strip edges),
and a binomial test of the mass beyond the base ``r`` (the tail algorithm).
"""
import numba
import numpy as np
import pytest
from scipy import stats

from aprnb.kernels.normal import LAYERS, R256, _X, base_radius, fill_normal, ziggurat_tables

N = 1 << 21


@pytest.fixture(scope="module")
def z():
    return fill_normal(np.empty(N), 2024)


def test_tables_have_equal_strips_and_the_known_base():
    x, fx = ziggurat_tables()
    assert x[1] == pytest.approx(3.6541528853610088, rel=1e-12)   # Marsaglia and Tsang
    v = x[1] * fx[1] + np.sqrt(2 * np.pi) * stats.norm.sf(x[1])     # base strip + tail
    areas = x[1:LAYERS] * (fx[2:LAYERS + 1] - fx[1:LAYERS])
    np.testing.assert_allclose(areas, v, rtol=1e-9)
    assert x[0] * fx[1] == pytest.approx(v) and x[LAYERS] == 0.0


def test_stored_base_is_the_bisection_root():
    # the module stores the 256-strip base instead of solving for it at import
    assert R256 == base_radius(256)
    x, _ = ziggurat_tables(128)                   # other strip counts are solved
    assert x[1] == base_radius(128) and 3.0 < x[1] < R256


def test_kolmogorov_smirnov(z):
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_chi_square_on_narrow_bins(z):
    edges = np.concatenate([[-np.inf], np.linspace(-4, 4, 399), [np.inf]])
    observed = np.histogram(z, edges)[0]
    expected = N * np.diff(stats.norm.cdf(edges))
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_mass_and_law_beyond_the_base_strip():
    # 16M draws give about 4,300 numbers beyond r, enough to tell the tail's
    # law from the exponential proposal it is sampled from (means 0.252 and 0.274).
    big = np.abs(fill_normal(np.empty(1 << 24, np.float32), 99).astype(np.float64))
    r = _X[1]
    tail = big[big > r]
    assert stats.binomtest(len(tail), len(big), 2 * stats.norm.sf(r)).pvalue > 1e-3
    cdf = lambda t: 1.0 - stats.norm.sf(t) / stats.norm.sf(r)       # noqa: E731
    assert stats.kstest(tail, cdf).pvalue > 1e-3


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_same_numbers_on_any_thread_count_and_scaled(dt):
    one, two = np.empty((700, 300), dt), np.empty((700, 300), dt)
    with_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        fill_normal(one, 7, 0.5, block=4096)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        fill_normal(two, 7, 0.5, block=4096)
    finally:
        numba.set_num_threads(with_threads)
    np.testing.assert_array_equal(one, two)
    ref = fill_normal(np.empty(700 * 300), 7, block=4096)
    np.testing.assert_array_equal(one.ravel(), (ref * 0.5).astype(dt))
    assert not np.array_equal(one[:10], fill_normal(np.empty((700, 300), dt), 8)[:10])


def test_rejects_a_strided_array():
    with pytest.raises(ValueError, match="C-contiguous"):
        fill_normal(np.empty((10, 10))[:, ::2], 1)
