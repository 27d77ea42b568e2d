"""``reproduce``: the whole study on a small synthetic folder, with seeds and statistics."""
import json

import numpy as np
import pytest

from aprnb.data import holdout_split, make_synthetic
from aprnb.study.reproduce import reproduce

#: The MF study; the systems beyond MF have tests of their own (at the end).
SMALL = dict(quick=True, n_threads=1, epochs=4, apr_epochs=2, systems=())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A LightGCN-format folder (train.txt, test.txt) of a small synthetic set."""
    path = tmp_path_factory.mktemp("synth")
    X = make_synthetic(n_users=60, n_items=40, mean_degree=8, random_state=3)
    train, test = holdout_split(X, 0.25, random_state=0)
    for name, M in (("train.txt", train), ("test.txt", test)):
        lines = [" ".join(map(str, [u, *M.indices[M.indptr[u]:M.indptr[u + 1]]]))
                 for u in range(M.shape[0]) if M.indptr[u + 1] > M.indptr[u]]
        (path / name).write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def study(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    results = reproduce([str(folder)], out=str(out), seeds=3, **SMALL)
    return results, out


def test_every_arm_is_trained_for_every_seed(study):
    results, _ = study
    p = results[0]["protocols"]["loo"]
    assert p["seeds"] == [0, 1, 2] and len(p["runs"]) == 3
    arms = {"MF-BPR", "AMF", "MF-BPR (E epochs)", "MF-BPR (E + E_apr epochs)",
            "APR, random noise", "VAT"}
    assert set(p["test"]) == arms
    for name in arms:
        s = p["test"][name]["ndcg@100"]
        values = [r["test"][name]["ndcg@100"] for r in p["runs"]]
        assert s["values"] == values and s["n"] == 3
        assert s["mean"] == pytest.approx(np.mean(values))
        assert s["sd"] == pytest.approx(np.std(values, ddof=1))
    # seeds differ, so the spread is real
    assert len({r["test"]["AMF"]["ndcg@100"] for r in p["runs"]}) > 1


def test_paired_statistics_compare_the_seeds_and_the_users(study):
    results, _ = study
    p = results[0]["protocols"]["loo"]
    row = next(r for r in p["paired"] if (r["a"], r["b"]) == ("MF-BPR (E + E_apr epochs)", "AMF"))
    seeds = row["ndcg@100"]["seeds"]
    gains = [r["test"]["AMF"]["ndcg@100"] / r["test"]["MF-BPR (E + E_apr epochs)"]["ndcg@100"]
             - 1 for r in p["runs"]]
    assert seeds["mean_gain"] == pytest.approx(np.mean(gains))
    assert seeds["n_positive"] == sum(g > 0 for g in gains)
    users = row["ndcg@100"]["users"]
    base = np.mean([r["test"]["MF-BPR (E + E_apr epochs)"]["ndcg@100"] for r in p["runs"]])
    amf = np.mean([r["test"]["AMF"]["ndcg@100"] for r in p["runs"]])
    assert users["diff"] == pytest.approx(amf - base)
    assert users["ci_low"] <= users["diff"] <= users["ci_high"]


def test_robustness_has_both_attacks_and_noise_for_three_models(study):
    results, _ = study
    rob = results[0]["protocols"]["loo"]["robustness"]
    keys = {(c["model"], c["kind"], c["eps"]) for c in rob}
    assert keys == {(m, k, e) for m in ("MF-BPR", "AMF", "VAT")
                    for k in ("adversarial", "pgd", "random") for e in (0.5, 1.0, 2.0)}
    assert all(c["n"] == 3 for c in rob)


def test_report_and_json(study):
    results, out = study
    md = (out / "results.md").read_text()
    for text in ("± ", "Paired comparisons", "coverage@100", "gini@20", "novelty@100",
                 "| VAT | pgd |", "APR, random noise", "--seeds 3"):
        assert text in md, text
    saved = json.loads((out / "results.json").read_text())
    assert saved[0]["protocols"]["holdout"]["test"]["AMF"]["recall@20"]["n"] == 3
    assert "per_user" not in saved[0]["protocols"]["loo"]["runs"][0]


def test_missing_folder_fails_before_writing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        reproduce([str(tmp_path / "nodata")], out=str(tmp_path / "res"), **SMALL)
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("kw, err", [(dict(seeds=0), ValueError), (dict(jobs="2"), TypeError),
                                     (dict(protocols=("loo", "sampled")), ValueError)])
def test_bad_arguments(folder, tmp_path, kw, err):
    with pytest.raises(err):
        reproduce([str(folder)], out=str(tmp_path / "res"), **dict(SMALL, **kw))
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_jobs_give_the_same_numbers_as_one_process(folder, study, tmp_path):
    """Seeds and validation fits in two worker processes, one thread each: bitwise the
    serial run."""
    res = reproduce([str(folder)], out=str(tmp_path), seeds=3, jobs=2,
                    protocols=("loo",), **SMALL)
    serial = study[0][0]["protocols"]["loo"]
    assert res[0]["protocols"]["loo"]["selection"] == serial["selection"]
    for a, b in zip(res[0]["protocols"]["loo"]["runs"], serial["runs"]):
        assert a["test"] == b["test"]


def test_random_noise_arm_for_the_first_seeds_only(folder, tmp_path):
    res = reproduce([str(folder)], out=str(tmp_path), seeds=2, random_noise_seeds=1,
                    protocols=("loo",), **SMALL)
    p = res[0]["protocols"]["loo"]
    assert ["APR, random noise" in r["test"] for r in p["runs"]] == [True, False]
    assert p["test"]["APR, random noise"]["hr@100"]["n"] == 1
    assert p["test"]["AMF"]["hr@100"]["n"] == 2
    row = next(r for r in p["paired"] if r["a"] == "APR, random noise")
    assert row["hr@100"]["seeds"]["n"] == 1
    assert "(n = 1)" in (tmp_path / "results.md").read_text()
    none = reproduce([str(folder)], out=str(tmp_path), seeds=1, random_noise_seeds=0,
                     protocols=("loo",), **SMALL)[0]["protocols"]["loo"]
    assert "APR, random noise" not in none["test"]
    assert all(r["a"] != "APR, random noise" for r in none["paired"])
    assert "--random-noise-seeds 0" in (tmp_path / "results.md").read_text()


# -- the systems beyond MF (aprnb/study/systems.py), with MF classes standing in -------------
def test_systems_are_selected_on_validation_and_trained_for_every_seed(folder, tmp_path,
                                                                       monkeypatch):
    """Each system's candidates are scored on validation (first seed), the best is trained
    for every seed (warm starts from the seed's MF-BPR or from another system, and the
    continued baseline beside it) and joins the table and the paired comparisons."""
    from aprnb.study import systems
    fake = (systems.System("CDAE", "BPR", dict(factors=8), epochs=3, quick_epochs=2,
                           grid=({"learning_rate": 0.05}, {"learning_rate": 0.2})),
            systems.System("NeuMF", "BPR", dict(factors=64), epochs=3, quick_epochs=2,
                           grid=({"reg": 0.0}, {"reg": 0.001}), start="MF-BPR"),
            systems.System("NeuMF + APR", "APR", dict(factors=64), epochs=3, quick_epochs=1,
                           grid=({"eps": 0.5}, {"eps": 1.0}), start="NeuMF",
                           continued="NeuMF (continued)"))
    monkeypatch.setattr(systems, "SYSTEMS", fake)
    with pytest.raises(ValueError, match="starts from 'NeuMF'"):
        reproduce([str(folder)], out=str(tmp_path), seeds=2,
                  **dict(SMALL, systems=["NeuMF + APR"]))
    res = reproduce([str(folder)], out=str(tmp_path), seeds=2, protocols=("loo",),
                    **dict(SMALL, systems="all"))
    p = res[0]["protocols"]["loo"]
    chosen = p["selection"]["systems"]
    assert set(chosen) == {"CDAE", "NeuMF", "NeuMF + APR"}
    assert set(chosen["CDAE"]["val"]) == {"learning_rate=0.05", "learning_rate=0.2"}
    assert chosen["CDAE"]["params"] in ({"learning_rate": 0.05}, {"learning_rate": 0.2})
    # the continuing system is tried with the settings chosen for the one it continues
    reg = chosen["NeuMF"]["params"]["reg"]
    assert set(chosen["NeuMF + APR"]["val"]) == {f"reg={reg}, eps=0.5", f"reg={reg}, eps=1.0"}
    for name in ("CDAE", "NeuMF", "NeuMF + APR", "NeuMF (continued)"):
        assert p["test"][name]["hr@100"]["n"] == 2
    pairs = {(r["a"], r["b"]) for r in p["paired"]}
    assert ("NeuMF (continued)", "NeuMF + APR") in pairs and ("CDAE", "AMF") in pairs
    models = {c["model"] for c in p["robustness"]}
    assert {"NeuMF (continued)", "NeuMF + APR"} <= models
    text = (tmp_path / "results.md").read_text()
    assert "| NeuMF + APR |" in text and "| CDAE |" in text


def test_the_real_systems_run_in_the_study(folder, tmp_path):
    """CDAE, IRGAN, NeuMF and APR on NeuMF as the study trains them (quick epochs)."""
    from aprnb.study.systems import SYSTEMS
    res = reproduce([str(folder)], out=str(tmp_path), seeds=1, protocols=("loo",),
                    **dict(SMALL, systems="all"))
    p = res[0]["protocols"]["loo"]
    names = {s.name for s in SYSTEMS} | {s.continued for s in SYSTEMS if s.continued}
    assert names <= set(p["test"]), sorted(p["test"])
    for name in names:
        assert 0 < p["test"][name]["hr@100"]["mean"] <= 1


def test_a_continuing_system_drops_the_settings_of_a_fresh_fit():
    """A candidate may set its own epochs and NeuMF's pre-training; a system that continues
    it inherits neither (a warm start cannot pre-train), and quick runs cap both."""
    from aprnb.study import systems as S
    neumf = S.System("NeuMF", "NeuMF", {"factors": 8}, epochs=9, quick_epochs=2)
    apr = S.System("NeuMF + APR", "NeuMF", {"factors": 8}, epochs=5, quick_epochs=1,
                   start="NeuMF")
    chosen = {"NeuMF": {"params": {"pretrain_epochs": 10, "epochs": 1, "negatives": 4}}}
    cand = S._inherited(apr, chosen, {"eps": 0.2})
    assert cand == {"negatives": 4, "eps": 0.2}
    model = S.make_model(neumf, False, 1, 0, chosen["NeuMF"]["params"])
    assert (model.epochs, model.pretrain_epochs, model.negatives) == (1, 10, 4)
    quick = S.make_model(neumf, True, 1, 0, chosen["NeuMF"]["params"])
    assert (quick.epochs, quick.pretrain_epochs) == (1, 2)
    assert S.make_model(apr, False, 1, 0, cand).get_params()["epochs"] == 5
    assert S.make_model(neumf, False, 1, 0, {}).epochs == 9


def test_robustness_for_the_first_seeds_only(folder, tmp_path):
    res = reproduce([str(folder)], out=str(tmp_path), seeds=2, robustness_seeds=1,
                    protocols=("loo",), **SMALL)
    p = res[0]["protocols"]["loo"]
    assert ["robustness" in r for r in p["runs"]] == [True, False]
    assert p["robustness"] and all(c["n"] == 1 for c in p["robustness"])
    assert p["test"]["AMF"]["hr@100"]["n"] == 2
    text = (tmp_path / "results.md").read_text()
    assert "perturbation, one seed (the first 1 of 2)" in text and "nan" not in text
    none = reproduce([str(folder)], out=str(tmp_path / "none"), seeds=2, robustness_seeds=0,
                     protocols=("loo",), **SMALL)[0]["protocols"]["loo"]
    assert "robustness" not in none and "eps_curve" not in none
    text = (tmp_path / "none" / "results.md").read_text()
    assert "--robustness-seeds 0" in text and "Robustness" not in text
    with pytest.raises(ValueError, match="robustness_seeds"):
        reproduce([str(folder)], out=str(tmp_path / "bad"), robustness_seeds=-1, **SMALL)


def _fake_systems():
    from aprnb.study.systems import System
    return (System("A", "BPR", dict(factors=8), epochs=3, quick_epochs=2,
                   grid=({"learning_rate": 0.05}, {"learning_rate": 0.2})),
            System("B", "APR", dict(factors=8), epochs=2, quick_epochs=2,
                   grid=({"eps": 0.5}, {"eps": 1.0}), start="A"),
            System("C", "BPR", dict(factors=8), epochs=2, quick_epochs=2,
                   grid=({"reg": 0.0}, {"reg": 0.01}), start="MF-BPR"),
            # two spellings of one setting (learning_rate 0.05 is the default): a tie
            System("T", "BPR", dict(factors=8), epochs=2, quick_epochs=2,
                   grid=({"reg": 0.0}, {"reg": 0.0, "learning_rate": 0.05})))


def _select_fakes(systems, pool):
    from functools import partial

    from aprnb.models import BPR
    from aprnb.data import leave_one_out
    from aprnb.study import reproduce as R
    from aprnb.study import systems as S
    X = make_synthetic(n_users=60, n_items=40, mean_degree=8, random_state=5)
    tr, va = leave_one_out(X, random_state=1)
    bpr = BPR(factors=8, epochs=2, random_state=0, n_threads=1, show_progress=False).fit(tr)
    val = partial(R._val_score, proto="loo", k=20, n_threads=1, metric="ndcg@20")
    return S.select(systems, tr, va, "loo", 20, "ndcg@20", bpr, 1, 0, False, val, pool)


@pytest.mark.slow
def test_selection_in_worker_processes_equals_one_by_one():
    """The systems' candidates fit side by side in two workers (a system as soon as the
    one it continues is chosen) make the same choice, from the same values, in the same
    order; ties go to the earlier candidate."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    systems = _fake_systems()
    serial = _select_fakes(systems, None)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = _select_fakes(systems, pool)
    assert parallel == serial and list(parallel) == list(serial) == ["A", "B", "C", "T"]
    assert len(set(serial["T"]["val"].values())) == 1           # the tie: the first wins
    assert serial["T"]["params"] == {"reg": 0.0}
    for name, own in (("A", "learning_rate"), ("B", "eps"), ("C", "reg")):
        vals = serial[name]["val"]
        assert len(vals) == 2
        assert max(vals, key=vals.get).endswith(f"{own}={serial[name]['params'][own]}")
    # B continues A with the settings chosen for A
    assert all(k.startswith(f"learning_rate={serial['A']['params']['learning_rate']}, ")
               for k in serial["B"]["val"])


def test_selection_refuses_a_system_whose_start_is_missing():
    from aprnb.study.systems import System
    orphan = System("D", "APR", dict(factors=8), epochs=1, quick_epochs=1, start="Z")
    with pytest.raises(ValueError, match="start from systems that are not selected"):
        _select_fakes((orphan,), None)


def test_report_flags_candidates_that_collapsed_on_validation():
    """A candidate below half of its model's best validation score is named (Last.fm's
    VAT at eps 1 scored 0.003 against 0.17); narrow losers are not."""
    from aprnb.study.report import collapsed
    sel = {"val_bpr": {500: 0.170, 750: 0.168}, "val_amf": {0.5: 0.18, 1.0: 0.1},
           "val_vat": {0.5: 0.17, 1.0: 0.003},
           "systems": {"NeuMF + APR": {"val": {"eps=0.2": 0.178, "eps=0.5": 0.121}}}}
    assert collapsed(sel) == [("VAT", "eps=1.0", 0.003)]
    assert collapsed(sel, ratio=0.7) == [
        ("AMF", "eps=1.0", 0.1), ("VAT", "eps=1.0", 0.003), ("NeuMF + APR", "eps=0.5", 0.121)]
