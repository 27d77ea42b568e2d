"""The acceptance experiments on real data (read from ../shared/data, skipped if absent).

* Gowalla (LightGCN split): MF-BPR with plain SGD reaches the published Recall@20.
* Last.fm, leave-one-out, the paper's settings (per-triple Adagrad, lr 0.05, reg 0,
  init std 0.01; APR eps 0.5, reg_adv 1): AMF continued from a 500-epoch MF-BPR beats
  the same MF-BPR continued for 250 more epochs on HR@100 and NDCG@100 for each of
  three training seeds, by >= 3% on NDCG@100 on average; and it loses at most half
  as much NDCG@100 under adversarial noise at eps 0.5 and 1.0.

  Why three seeds: the gains are a few percent and the HR@100 of 1,874 users moves
  by about 1% (relative 2%) from one training seed to the next. Over five seeds the
  HR@100 gain ranged from +1.6% to +3.8% (mean +2.4%) and the NDCG@100 gain from
  +2.7% to +5.2% (mean +3.9%), so a ">= 3% on both for one seed" test would pass
  or fail by the luck of the seed.

Each Last.fm run takes about 10 s on one thread; one thread plus a seed keeps the
runs bitwise reproducible.
"""
from pathlib import Path

import pytest

import aprnb
from aprnb.data import leave_one_out, load_lastfm, load_lightgcn, merge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _need(name):
    if not (DATA / name).is_dir():
        pytest.skip(f"real data {DATA / name} not found (expected ../shared/data beside the "
                    f"repository)")


def test_gowalla_bpr_reaches_published_recall():
    _need("gowalla")
    d = load_lightgcn(DATA / "gowalla")
    model = aprnb.BPR(factors=64, learning_rate=0.05, reg=0.001, init_std=0.1, epochs=400,
                      optimizer="sgd", random_state=0, show_progress=False).fit(d.train)
    res = aprnb.evaluate(model, d.train, d.test, k=[20])
    assert res["n_users"] == 29858
    assert res["recall@20"] >= 0.1291, res     # NGCF paper's MF-BPR on this split
    assert res["ndcg@20"] >= 0.1109, res


SEEDS = (0, 1, 2)


def _lastfm_pair(train, seed):
    """(MF-BPR continued, AMF), both started from one 500-epoch MF-BPR of ``seed``."""
    kw = dict(optimizer="adagrad", learning_rate=0.05, reg=0.0, init_std=0.01, n_threads=1,
              random_state=seed, show_progress=False)
    bpr = aprnb.BPR(epochs=500, **kw).fit(train)
    bpr_more = aprnb.BPR(epochs=250, **kw).fit(train, init=bpr)
    amf = aprnb.APR(epochs=250, eps=0.5, reg_adv=1.0, **kw).fit(train, init=bpr)
    return bpr_more, amf


@pytest.fixture(scope="module")
def lastfm_runs():
    _need("lastfm")
    d = load_lastfm(DATA / "lastfm")
    train, test = leave_one_out(merge(d.train, d.test), random_state=0)
    return train, test, {seed: _lastfm_pair(train, seed) for seed in SEEDS}


def test_lastfm_amf_beats_continued_bpr(lastfm_runs):
    train, test, pairs = lastfm_runs
    gains = {"hr@100": [], "ndcg@100": []}
    for seed, (bpr_more, amf) in pairs.items():
        b = aprnb.evaluate(bpr_more, train, test, k=[100], protocol="loo")
        a = aprnb.evaluate(amf, train, test, k=[100], protocol="loo")
        for m in gains:
            assert a[m] > b[m], (seed, a, b)
            gains[m].append(a[m] / b[m] - 1)
    assert sum(gains["ndcg@100"]) / len(SEEDS) >= 0.03, gains


def test_lastfm_amf_is_robust(lastfm_runs):
    train, test, pairs = lastfm_runs
    bpr_more, amf = pairs[0]
    drops = {}
    for name, model in (("bpr", bpr_more), ("amf", amf)):
        rep = aprnb.robustness(model, train, test, eps=(0.5, 1.0), kinds=("adversarial",),
                               k=100, random_state=0)
        drops[name] = [-r["ndcg@100 change"] for r in rep if r["kind"] == "adversarial"]
    for b, a in zip(drops["bpr"], drops["amf"]):
        assert b > 0
        assert a <= 0.5 * b, drops
