"""aprnb.stats: paired comparisons on users, summaries and paired gains over seeds.

p-values are checked against SciPy called directly with the documented options, and
pinned to textbook values worked out by hand; the bootstrap interval against NumPy.
"""
import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats as st

from aprnb import stats as S

# Student's (1908) sleep data of Cushny & Peebles, R's `sleep` data set: extra hours of
# sleep of 10 patients under two drugs.
SLEEP_1 = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])
SLEEP_2 = np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def _result(values, users=None):
    """A hand-made evaluate(..., per_user=True) result."""
    values = {m: np.asarray(v, dtype=np.float64) for m, v in values.items()}
    n = len(next(iter(values.values())))
    users = np.arange(n, dtype=np.int64) if users is None else np.asarray(users, np.int64)
    out = {m: float(v.mean()) for m, v in values.items()}
    out.update(n_users=n, users=users, per_user=values)
    return out


# -- textbook values ---------------------------------------------------------------------
def test_sleep_data_textbook_values():
    """Differences d = drug 2 - drug 1: 1.2 2.4 1.3 1.3 0.0 1.0 1.8 0.8 4.6 1.4, mean 1.58.

    t-test by hand: sd(d) = 1.2300, t = 1.58 / (1.2300 / sqrt(10)) = 4.0621 on 9 df,
    p = 0.002833 (R: t.test(extra ~ group, data = sleep, paired = TRUE) prints the same).
    Wilcoxon by hand: the zero is dropped, m = 9; |d| ranks 0.8:1 1.0:2 1.2:3 1.3:4.5
    1.3:4.5 1.4:6 1.8:7 2.4:8 4.6:9, all positive, so T- = 0. Null mean m(m+1)/4 = 22.5,
    variance m(m+1)(2m+1)/24 - (2^3 - 2)/48 = 71.25 - 0.125 = 71.125 (one pair of ties);
    with the continuity correction z = (0 - 22.5 + 0.5) / sqrt(71.125) = -2.6086 and
    p = 2 Phi(-2.6086) = 0.009091 (R's wilcox.test(..., paired = TRUE): V = 0, p = 0.009091).
    """
    r = S.paired(SLEEP_1, SLEEP_2)
    assert r.n == 10 and r.n_nonzero == 9
    assert r.diff == pytest.approx(1.58)
    assert r.p_ttest == pytest.approx(0.002833, abs=5e-7)
    z = (0 - 22.5 + 0.5) / math.sqrt(71.125)
    assert r.p_wilcoxon == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert r.p_wilcoxon == pytest.approx(0.009091, abs=5e-7)


@pytest.mark.parametrize("n, p", [(5, 2 / 2**5), (6, 2 / 2**6), (7, 2 / 2**7)])
def test_exact_wilcoxon_all_positive(n, p):
    """n distinct positive differences: of the 2^n equally likely sign patterns only
    all-positive gives T- = 0 and only all-negative gives T+ = 0, so the exact
    two-sided p is 2 / 2^n (hence n = 5 can never reach 0.05)."""
    a = np.zeros(n)
    b = np.arange(1, n + 1) * 0.01
    assert S.paired(a, b).p_wilcoxon == pytest.approx(p, rel=1e-12)


# -- against scipy and numpy -------------------------------------------------------------
def _pairs(n, seed, hr=False):
    rng = np.random.default_rng(seed)
    if hr:                                   # 0/1 values: most differences are zero
        a = (rng.random(n) < 0.4).astype(float)
        b = np.where(rng.random(n) < 0.1, (rng.random(n) < 0.5).astype(float), a)
        return a, b
    a = rng.random(n) * 0.4
    return a, a + rng.normal(0.01, 0.05, n)


@pytest.mark.parametrize("n, hr, method", [(30, False, "exact"), (400, False, "approx"),
                                           (2000, True, "approx")])
def test_p_values_match_scipy(n, hr, method):
    a, b = _pairs(n, seed=n, hr=hr)
    r = S.paired(a, b, n_resamples=200)
    want = st.wilcoxon(b - a, zero_method="wilcox", correction=True, method=method).pvalue
    assert r.p_wilcoxon == pytest.approx(want, rel=1e-12)
    assert r.p_ttest == pytest.approx(st.ttest_rel(b, a).pvalue, rel=1e-12)
    if hr:
        assert 0 < r.n_nonzero < n / 2
        # zero differences are discarded, not ranked (zero_method="pratt" differs)
        pratt = st.wilcoxon(b - a, zero_method="pratt", correction=True, method=method)
        assert r.p_wilcoxon != pytest.approx(pratt.pvalue, rel=1e-6)


def test_means_and_difference_against_numpy():
    a, b = _pairs(500, seed=3)
    r = S.paired(a, b, metric="ndcg@100", n_resamples=200)
    assert r.mean_a == pytest.approx(np.mean(a), rel=1e-12)
    assert r.mean_b == pytest.approx(np.mean(b), rel=1e-12)
    assert r.diff == pytest.approx(np.mean(b - a), rel=1e-12)
    assert r.diff > 0 and r.relative == pytest.approx(np.mean(b - a) / np.mean(a))
    back = S.paired(b, a, n_resamples=200)
    assert back.diff == pytest.approx(-r.diff) and back.ci_low == pytest.approx(-r.ci_high)
    assert math.isnan(S.paired(np.zeros(4), np.ones(4), n_resamples=50).relative)


def test_str_is_one_readable_line():
    a, b = _pairs(300, seed=4)
    r = S.paired(a, b, metric="ndcg@100", n_resamples=200)
    s = str(r)
    assert "\n" not in s
    assert re.fullmatch(r"ndcg@100: \d\.\d{4} -> \d\.\d{4} \([+-]\d+\.\d%\), diff [+-]\d\.\d{4} "
                        r"\[95% CI [+-]\d\.\d{4}, [+-]\d\.\d{4}\], Wilcoxon p=\S+, "
                        r"t-test p=\S+, n=300", s), s
    assert f"{r.mean_a:.4f} -> {r.mean_b:.4f}" in s and f"p={r.p_ttest:.2g}" in s


# -- bootstrap interval -----------------------------------------------------------------
def test_ci_contains_the_difference_and_is_reproducible():
    a, b = _pairs(1000, seed=5)
    r1 = S.paired(a, b, n_resamples=2000, random_state=7)
    r2 = S.paired(a, b, n_resamples=2000, random_state=7)
    r3 = S.paired(a, b, n_resamples=2000, random_state=8)
    assert r1.ci_low < r1.diff < r1.ci_high
    assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
    assert (r1.ci_low, r1.ci_high) != (r3.ci_low, r3.ci_high)
    narrow = S.paired(a, b, confidence=0.5, n_resamples=2000, random_state=7)
    assert r1.ci_low < narrow.ci_low < narrow.ci_high < r1.ci_high


def test_ci_narrows_with_more_users():
    small, large = _pairs(100, seed=6), _pairs(10_000, seed=6)
    w_small = S.paired(*small, n_resamples=1000)
    w_large = S.paired(*large, n_resamples=1000)
    ratio = (w_small.ci_high - w_small.ci_low) / (w_large.ci_high - w_large.ci_low)
    assert 7 < ratio < 14                  # width ~ 1/sqrt(n): sqrt(100) = 10


def test_ci_matches_a_numpy_percentile_bootstrap():
    """A skewed sample (the percentile and the 'basic' interval differ): the interval
    agrees with a plain NumPy percentile bootstrap within Monte-Carlo error."""
    rng = np.random.default_rng(9)
    d = rng.lognormal(0.0, 1.2, size=40)
    n, B = d.size, 9999
    r = S.paired(np.zeros(n), d, n_resamples=B, random_state=1)
    means = d[np.random.default_rng(2).integers(0, n, size=(B, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    se = d.std(ddof=1) / math.sqrt(n)      # sd of the bootstrap distribution
    assert r.ci_low == pytest.approx(low, abs=0.15 * se)
    assert r.ci_high == pytest.approx(high, abs=0.15 * se)
    basic = (2 * d.mean() - high, 2 * d.mean() - low)
    assert abs(r.ci_low - basic[0]) > 0.3 * se and abs(r.ci_high - basic[1]) > 0.3 * se


def test_bootstrap_memory_is_bounded(monkeypatch):
    """At 100k users each batch holds at most BOOTSTRAP_CELLS resampled values."""
    seen = {}

    class _CI:
        low, high = -1.0, 1.0

    class _Res:
        confidence_interval = _CI()

    def fake(data, statistic, **kw):
        seen.update(kw, n=data[0].size)
        return _Res()

    monkeypatch.setattr(st, "bootstrap", fake)    # the scipy.stats that aprnb.stats uses
    a, b = _pairs(100_000, seed=10)
    S.paired(a, b)
    assert seen["n_resamples"] == 9999 and seen["method"] == "percentile"
    assert 1 <= seen["batch"] and seen["batch"] * seen["n"] <= S.BOOTSTRAP_CELLS


# -- degenerate differences --------------------------------------------------------------
def test_all_zero_differences():
    """Identical models: the Wilcoxon test is undefined; the documented convention is
    p = 1.0 (and the same for the t-test), with no exception and no warning."""
    hr = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=float)
    r = _no_warnings(S.paired, hr, hr.copy(), metric="hr@10")
    assert (r.p_wilcoxon, r.p_ttest, r.n_nonzero) == (1.0, 1.0, 0)
    assert (r.diff, r.ci_low, r.ci_high) == (0.0, 0.0, 0.0)
    assert "Wilcoxon p=1," in str(r)


def test_constant_nonzero_and_single_nonzero_differences():
    # (older SciPy, e.g. 1.9, warns that 6 or 1 nonzero differences are few for the normal
    # approximation; that warning is passed on, so it is not checked here)
    r = S.paired(np.zeros(6), np.full(6, 0.5))
    assert (r.ci_low, r.ci_high, r.p_ttest) == (0.5, 0.5, 0.0)
    b = np.zeros(50)
    b[3] = 1.0
    r = S.paired(np.zeros(50), b, n_resamples=200)
    assert r.n_nonzero == 1 and r.p_wilcoxon == pytest.approx(1.0)


# -- result dicts ------------------------------------------------------------------------
def test_result_dicts_give_the_same_as_arrays():
    a, b = _pairs(200, seed=11)
    ra = _result({"ndcg@100": a, "hr@100": a > 0.2})
    rb = _result({"ndcg@100": b, "hr@100": b > 0.2})
    got = S.paired(ra, rb, metric="ndcg@100", n_resamples=300)
    assert got == S.paired(a, b, metric="ndcg@100", n_resamples=300)
    assert str(got).startswith("ndcg@100: ")


def test_result_dicts_on_different_users():
    a, b = _pairs(5, seed=12)
    ra, rb = _result({"ndcg@10": a}), _result({"ndcg@10": b}, users=[0, 1, 2, 3, 5])
    with pytest.raises(ValueError, match="same users"):
        S.paired(ra, rb, metric="ndcg@10")
    with pytest.raises(ValueError, match="same users"):
        S.paired(ra, _result({"ndcg@10": b[:4]}), metric="ndcg@10")


def test_result_dict_without_per_user():
    a, b = _pairs(5, seed=13)
    rb = _result({"ndcg@10": b})
    plain = {"ndcg@10": float(a.mean()), "n_users": 5}
    with pytest.raises(ValueError, match=r"per_user=True"):
        S.paired(plain, rb, metric="ndcg@10")
    with pytest.raises(ValueError, match=r"metric=.*ndcg@10"):
        S.paired(_result({"ndcg@10": a}), rb)
    with pytest.raises(ValueError, match="no per-user 'hr@10'"):
        S.paired(_result({"ndcg@10": a}), rb, metric="hr@10")
    with pytest.raises(TypeError, match="both"):
        S.paired(_result({"ndcg@10": a}), b, metric="ndcg@10")
    bad = _result({"ndcg@10": a})
    bad["users"] = bad["users"][:3]
    with pytest.raises(ValueError, match="not aligned"):
        S.paired(bad, rb, metric="ndcg@10")


# -- input validation --------------------------------------------------------------------
@pytest.mark.parametrize("a, b, exc, match", [
    ([0.1, np.nan, 0.3], [0.1, 0.2, 0.3], ValueError, "NaN or infinite"),
    ([0.1, 0.2, 0.3], [0.1, np.inf, 0.3], ValueError, "NaN or infinite"),
    ([0.1, 0.2, 0.3], [0.1, 0.2], ValueError, "one value per user"),
    ([0.1], [0.2], ValueError, "at least 2 users"),
    ([], [], ValueError, "at least 2 users"),
    (["a", "b"], [0.1, 0.2], TypeError, "not numeric"),
    (np.array([0.1, None], dtype=object), [0.1, 0.2], TypeError, "not numeric"),
    (None, [0.1, 0.2], TypeError, "1-D array"),
    ("0.1 0.2", [0.1, 0.2], TypeError, "1-D array"),
    (np.zeros((2, 2)), np.zeros((2, 2)), ValueError, "1 dimension"),
])
def test_bad_values(a, b, exc, match):
    with pytest.raises(exc, match=match):
        S.paired(a, b)


@pytest.mark.parametrize("kw, exc", [(dict(confidence=1.0), ValueError),
                                     (dict(confidence=0), ValueError),
                                     (dict(confidence="0.95"), TypeError),
                                     (dict(n_resamples=0), ValueError),
                                     (dict(n_resamples=10.5), TypeError),
                                     (dict(random_state=-1), ValueError)])
def test_bad_options(kw, exc):
    with pytest.raises(exc):
        S.paired([0.1, 0.2, 0.3], [0.2, 0.2, 0.4], **kw)


def test_inputs_are_not_modified_and_bools_accepted():
    a, b = np.array([True, False, True, True]), np.array([1, 1, 0, 1])
    a0, b0 = a.copy(), b.copy()
    r = S.paired(a, b, n_resamples=100)
    assert r.mean_a == 0.75 and r.mean_b == 0.75
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


# -- over seeds --------------------------------------------------------------------------
RUNS_A = [{"ndcg@100": v, "hr@100": h, "n_users": 1892, "users": np.arange(3)}
          for v, h in [(0.1800, 0.51), (0.1830, 0.52), (0.1790, 0.50), (0.1840, 0.53),
                       (0.1802, 0.51)]]
RUNS_B = [{"ndcg@100": v, "hr@100": h} for v, h in
          [(0.1860, 0.52), (0.1820, 0.53), (0.1880, 0.51), (0.1841, 0.52), (0.1870, 0.53)]]


def test_over_seeds_against_numpy():
    out = S.over_seeds(RUNS_A)
    assert list(out) == ["ndcg@100", "hr@100"]          # n_users, users ignored
    v = np.array([r["ndcg@100"] for r in RUNS_A])
    s = out["ndcg@100"]
    assert s.n == 5 and s.values == tuple(v)
    assert s.mean == pytest.approx(v.mean()) and s.sd == pytest.approx(v.std(ddof=1))
    assert (s.min, s.max) == (v.min(), v.max())
    assert str(s) == (f"{v.mean():.4f} ± {v.std(ddof=1):.4f} [0.1790, 0.1840] (n=5)")


def test_over_seeds_one_seed_and_float32():
    s = S.over_seeds([{"auc": np.float32(0.9), "n_users": 3}])["auc"]
    assert s.n == 1 and math.isnan(s.sd) and s.mean == pytest.approx(0.9)
    assert str(s) == "0.9000 [0.9000, 0.9000] (n=1)"


def test_over_seeds_rejects_mismatched_or_bad_runs():
    with pytest.raises(ValueError, match=r"runs\[1\].*missing \['hr@100'\]"):
        S.over_seeds([RUNS_A[0], {"ndcg@100": 0.18}])
    with pytest.raises(ValueError, match=r"extra \['auc'\]"):
        S.over_seeds([RUNS_A[0], dict(RUNS_A[1], auc=0.9)])
    with pytest.raises(ValueError, match="empty"):
        S.over_seeds([])
    with pytest.raises(TypeError, match="one evaluate"):
        S.over_seeds(RUNS_A[0])
    with pytest.raises(ValueError, match="finite"):
        S.over_seeds([{"auc": float("nan")}, {"auc": 0.5}])


def test_paired_over_seeds_gains_and_counts():
    c = S.paired_over_seeds(RUNS_A, RUNS_B, "ndcg@100")
    a = np.array([r["ndcg@100"] for r in RUNS_A])
    b = np.array([r["ndcg@100"] for r in RUNS_B])
    gains = b / a - 1
    assert c.n == 5 and c.values_a == tuple(a) and c.values_b == tuple(b)
    assert np.allclose(c.gains, gains, rtol=1e-12)
    assert c.mean_gain == pytest.approx(gains.mean())
    assert (c.min_gain, c.max_gain) == (pytest.approx(gains.min()), pytest.approx(gains.max()))
    assert c.n_positive == 4                             # B loses on the second seed
    assert c.p_ttest == pytest.approx(st.ttest_rel(b, a).pvalue, rel=1e-12)
    assert str(c) == (f"ndcg@100: {gains.mean():+.1%} mean gain ({gains.min():+.1%} to "
                      f"{gains.max():+.1%}) over 5 seeds, 4/5 positive, "
                      f"t-test p={c.p_ttest:.2g}")
    tie = S.paired_over_seeds([0.5, 0.4, 0.3], [0.5, 0.5, 0.2], "hr")
    assert tie.n_positive == 1 and tie.gains[0] == 0.0


def test_paired_over_seeds_edge_cases():
    one = S.paired_over_seeds([0.5], [0.55], "auc")
    assert math.isnan(one.p_ttest) and one.mean_gain == pytest.approx(0.1)
    assert "over 1 seed," in str(one)
    zero = S.paired_over_seeds([0.0, 0.2], [0.1, 0.25], "hr")
    assert math.isnan(zero.gains[0]) and zero.gains[1] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="same seeds"):
        S.paired_over_seeds(RUNS_A, RUNS_B[:4], "ndcg@100")
    with pytest.raises(ValueError, match="no 'auc'"):
        S.paired_over_seeds(RUNS_A, RUNS_B, "auc")
    with pytest.raises(TypeError, match="dict or a number"):
        S.paired_over_seeds(["0.5", "0.6"], [0.5, 0.6], "auc")
