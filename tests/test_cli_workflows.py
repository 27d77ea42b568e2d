"""The CLI end to end, as a new user runs it: train, then evaluate / robustness / recommend
with their defaults, on the data forms users have (an NCF prefix with ``.test.negative``,
a MovieLens-style CSV with a header, a separate test file and quoted-list negatives).

Each number is checked against an independent computation from the files themselves:
the factors are read from the ``.npz`` with plain numpy, the split from the text files,
and the metrics computed by the obvious loops.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import aprnb
from aprnb.cli import build_parser, main

N_USERS, N_ITEMS, N_NEG = 60, 60, 30


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 0, err
    return json.loads(out)


def _interactions(seed=0):
    """A planted-group data set as (train pairs, one test item per user, negatives)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, N_USERS)
    train, test, negs = [], {}, {}
    for u in range(N_USERS):
        liked = [i for i in range(N_ITEMS) if i % 4 == group[u]]
        items = rng.choice(liked, 6, replace=False).tolist()
        extra = rng.choice(N_ITEMS, 4, replace=False).tolist()
        seen = sorted(set(items[:-1] + extra))
        test[u] = items[-1] if items[-1] not in seen else None
        train += [(u, i) for i in seen]
        pool = [j for j in range(N_ITEMS) if j not in seen and j != test[u]]
        negs[u] = rng.choice(pool, N_NEG, replace=False).tolist()
    return train, {u: i for u, i in test.items() if i is not None}, negs


@pytest.fixture(scope="module")
def ncf(tmp_path_factory):
    """An NCF prefix: ``.train.rating``, ``.test.rating`` and ``.test.negative``."""
    folder = tmp_path_factory.mktemp("ncf")
    train, test, negs = _interactions()
    prefix = folder / "toy"
    with open(f"{prefix}.train.rating", "w") as fh:
        fh.writelines(f"{u}\t{i}\t1\t{100 + k}\n" for k, (u, i) in enumerate(train))
    with open(f"{prefix}.test.rating", "w") as fh:
        fh.writelines(f"{u}\t{i}\t1\t999\n" for u, i in test.items())
    with open(f"{prefix}.test.negative", "w") as fh:
        fh.writelines(f"({u},{i})\t" + "\t".join(map(str, negs[u])) + "\n"
                      for u, i in test.items())
    return prefix


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    """A MovieLens-style CSV set with raw string ids: a header line, a test file and a
    negatives file in the quoted-list form ``user,"[j1, j2, ...]"``."""
    folder = tmp_path_factory.mktemp("ml")
    train, test, negs = _interactions(seed=1)
    uid = {u: f"u{1000 + u}" for u in range(N_USERS)}
    iid = {i: f"m{7 * i + 3}" for i in range(N_ITEMS)}
    with open(folder / "train.csv", "w") as fh:
        fh.write("userId,itemId,rating\n")
        fh.writelines(f"{uid[u]},{iid[i]},4.5\n" for u, i in train)
    with open(folder / "test.csv", "w") as fh:
        fh.write("userId,itemId,rating\n")
        fh.writelines(f"{uid[u]},{iid[i]},5\n" for u, i in test.items())
    with open(folder / "negatives.csv", "w") as fh:
        fh.write("userId,negatives\n")
        fh.writelines(f'{uid[u]},"[' + ", ".join(iid[j] for j in negs[u]) + ']"\n'
                      for u in test)
    return folder


# ---------------------------------------------------------------------------------------
# independent computation from the files
# ---------------------------------------------------------------------------------------
def read_factors(path):
    with np.load(path, allow_pickle=False) as z:
        ids = {k: z[k].tolist() for k in ("user_ids", "item_ids")}
        return z["user_factors"].astype(np.float64), z["item_factors"].astype(np.float64), ids


def sampled_from_files(model_path, test_pairs, negatives, k):
    """HR@k and NDCG@k by the obvious loop: the held-out item's rank among its listed
    negatives (ties counted against it), over raw ids mapped through the model's id maps."""
    P, Q, ids = read_factors(model_path)
    user = {str(v): n for n, v in enumerate(ids["user_ids"])}
    item = {str(v): n for n, v in enumerate(ids["item_ids"])}
    hr, ndcg = [], []
    for u, i in test_pairs:
        p = P[user[str(u)]]
        s_pos = p @ Q[item[str(i)]]
        rank = sum(p @ Q[item[str(j)]] >= s_pos for j in negatives[u])
        hr.append(rank < k)
        ndcg.append(1 / math.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(hr)), float(np.mean(ndcg))


def ncf_files(prefix):
    test = [tuple(line.split("\t")[:2]) for line in open(f"{prefix}.test.rating")]
    negs = {}
    for line in open(f"{prefix}.test.negative"):
        head, *rest = line.rstrip("\n").split("\t")
        negs[head[1:-1].split(",")[0]] = rest
    return test, negs


def csv_files(folder):
    test = [tuple(line.strip().split(",")[:2]) for line in open(folder / "test.csv")][1:]
    negs = {}
    for line in list(open(folder / "negatives.csv"))[1:]:
        u, rest = line.strip().split(",", 1)
        negs[u] = [t.strip() for t in rest.strip('"[]').split(",")]
    train = {}
    for line in list(open(folder / "train.csv"))[1:]:
        u, i, _ = line.strip().split(",")
        train.setdefault(u, set()).add(i)
    return test, negs, train


TRAIN = ["--epochs", "30", "--factors", "8", "--quiet", "--threads", "1", "--seed", "0"]


# ---------------------------------------------------------------------------------------
# NCF files: the sampled protocol from every command
# ---------------------------------------------------------------------------------------
def test_ncf_train_evaluate_robustness_agree_with_the_files(ncf, tmp_path, capsys):
    """Problem 2: .test.negative is used, and the default protocol is the sampled one."""
    model = tmp_path / "m.npz"
    trained = run_json(["train", "--data", ncf, "--out", model, "--json", *TRAIN], capsys)
    assert trained["protocol"] == "sampled" and set(trained["metrics"]) >= {"hr@10", "ndcg@10"}
    test, negs = ncf_files(ncf)
    hr, ndcg = sampled_from_files(model, test, negs, 10)
    assert 0.2 < hr < 1.0 and 0.1 < ndcg < 1.0     # a real model, not a degenerate one

    ev = run_json(["evaluate", "--model", model, "--data", ncf, "--json"], capsys)
    assert ev["protocol"] == "sampled" and ev["n_users"] == len(test)
    assert ev["metrics"]["hr@10"] == pytest.approx(hr, abs=1e-12)
    assert ev["metrics"]["ndcg@10"] == pytest.approx(ndcg, rel=1e-6)
    assert trained["metrics"] == ev["metrics"]

    rob = run_json(["robustness", "--model", model, "--data", ncf, "--json", "--eps", "0.5",
                    "--threads", "1"], capsys)
    assert rob["protocol"] == "sampled"
    assert rob["clean"]["hr@10"] == pytest.approx(hr, abs=1e-12)
    assert rob["clean"]["ndcg@10"] == pytest.approx(ndcg, rel=1e-6)
    assert [(r["kind"], r["eps"]) for r in rob["rows"]] == [("adversarial", 0.5),
                                                            ("random", 0.5)]
    for r in rob["rows"]:
        for m, v in r["metrics"].items():
            assert r["change"][m] == pytest.approx((v - rob["clean"][m]) / rob["clean"][m])

    # without --data, the model's recorded files and split are reused
    again = run_json(["evaluate", "--model", model, "--json"], capsys)
    assert again["metrics"] == ev["metrics"] and again["protocol"] == "sampled"


def test_robustness_defaults_reuse_the_models_split(ncf, tmp_path, capsys):
    """Problem 1: `robustness` with its defaults scored a re-split (leave-one-out over the
    merged files) on which 79% of held-out items were training items. Now every command
    defaults to the model's own split, and a re-split that leaks is refused."""
    model = tmp_path / "m.npz"
    run_json(["train", "--data", ncf, "--out", model, "--json", "--protocol", "loo", *TRAIN],
             capsys)
    ev = run_json(["evaluate", "--model", model, "--data", ncf, "--protocol", "loo", "--k",
                   "100", "--json"], capsys)
    rob = run_json(["robustness", "--model", model, "--data", ncf, "--protocol", "loo",
                    "--json", "--eps", "0.5", "--threads", "1"], capsys)
    assert rob["clean"]["hr@100"] == ev["metrics"]["hr@100"]
    for cmd in (["robustness", "--eps", "0.5"], ["evaluate"]):
        code, out, err = run([cmd[0], "--model", model, "--data", ncf, "--split", "loo",
                              "--split-seed", "3", *cmd[1:]], capsys)
        assert code == 2 and out == "", err
        assert "not the matrix this BPR was trained on" in err and "--no-split-check" in err
        assert err.count("\n") == 1 + err.count("warning")
    code, out, _ = run(["evaluate", "--model", model, "--data", ncf, "--split", "loo",
                        "--split-seed", "3", "--no-split-check"], capsys)
    assert code == 0 and "protocol loo" in out


def test_split_seed_needs_a_seeded_split(ncf, tmp_path, capsys):
    code, _, err = run(["train", "--data", ncf, "--split-seed", "3", "--out",
                        tmp_path / "m.npz", *TRAIN], capsys)
    assert code == 2 and "--split-seed seeds a loo or holdout split" in err
    assert not (tmp_path / "m.npz").exists()


def test_recommend_on_a_model_that_does_not_know_its_training_data(ncf, tmp_path, capsys):
    model = tmp_path / "m.npz"
    run_json(["train", "--data", ncf, "--out", model, "--json", *TRAIN], capsys)
    with np.load(model) as z:       # as written by aprnb before format 2
        old = {k: z[k] for k in z.files if not k.startswith("train_") and k != "provenance"}
    old["format_version"] = np.array(1)
    np.savez(tmp_path / "old.npz", **old)
    code, _, err = run(["recommend", "--model", tmp_path / "old.npz", "--users", "0"], capsys)
    assert code == 2 and "pass --include-seen, or retrain" in err
    code, out, _ = run(["recommend", "--model", tmp_path / "old.npz", "--users", "0",
                        "--include-seen"], capsys)
    assert code == 0 and out.startswith("0: ")


def test_train_init_reuses_the_recorded_split(ncf, tmp_path, capsys):
    bpr, amf = tmp_path / "bpr.npz", tmp_path / "amf.npz"
    run_json(["train", "--data", ncf, "--split", "holdout", "--split-seed", "4", "--out", bpr,
              "--json", *TRAIN], capsys)
    out = run_json(["train", "--data", ncf, "--model", "apr", "--init", bpr, "--out", amf,
                    "--json", *TRAIN], capsys)
    assert out["data"]["split"]["split"] == "holdout" and out["data"]["split"]["seed"] == 4
    prov = aprnb.load(amf).provenance_
    assert prov["init"]["class"] == "BPR"
    assert prov["init"]["train_fingerprint"] == prov["train_fingerprint"]
    assert prov["split"]["split"] == "holdout"


# ---------------------------------------------------------------------------------------
# MovieLens-style CSV: header, separate test file, quoted-list negatives, raw ids
# ---------------------------------------------------------------------------------------
def test_movielens_csv_trains_evaluates_and_recommends(movielens, tmp_path, capsys):
    """Problem 4 (and 6): a CSV with a header, a test file and negatives, from the CLI,
    without rewriting any file; recommendations in raw ids, never a training item."""
    before = {p: p.read_bytes() for p in movielens.iterdir()}
    model = tmp_path / "ml.npz"
    data = ["--train", movielens / "train.csv", "--test", movielens / "test.csv",
            "--negatives", movielens / "negatives.csv"]
    trained = run_json(["train", *data, "--out", model, "--json", *TRAIN], capsys)
    assert trained["data"]["n_users"] == N_USERS and trained["protocol"] == "sampled"

    test, negs, train = csv_files(movielens)
    hr, ndcg = sampled_from_files(model, test, negs, 10)
    ev = run_json(["evaluate", "--model", model, *data, "--json"], capsys)
    assert ev["metrics"]["hr@10"] == pytest.approx(hr, abs=1e-12)
    assert ev["metrics"]["ndcg@10"] == pytest.approx(ndcg, rel=1e-6)

    users = ["u1000", "u1007", "u1059"]
    rec = run_json(["recommend", "--model", model, "--users", *users, "--k", "5", "--json"],
                   capsys)
    assert rec["ids"] == "raw" and [r["user"] for r in rec["recommendations"]] == users
    all_items = {i for items in train.values() for i in items} | {i for _, i in test}
    for r in rec["recommendations"]:
        assert len(r["items"]) == 5 and r["scores"] == sorted(r["scores"], reverse=True)
        assert set(r["items"]) <= all_items
        assert not set(r["items"]) & train[r["user"]]          # never a training item
    seen = run_json(["recommend", "--model", model, "--users", *users, "--k", "5", "--json",
                     "--include-seen"], capsys)
    assert any(set(r["items"]) & train[r["user"]] for r in seen["recommendations"])
    code, _, err = run(["recommend", "--model", model, "--users", "nobody"], capsys)
    assert code == 2 and "unknown user id(s) ['nobody']" in err
    assert {p: p.read_bytes() for p in movielens.iterdir()} == before


def test_text_output_of_recommend(movielens, tmp_path, capsys):
    model = tmp_path / "ml.npz"
    run_json(["train", "--train", movielens / "train.csv", "--test", movielens / "test.csv",
              "--out", model, "--json", *TRAIN], capsys)
    code, out, _ = run(["recommend", "--model", model, "--users", "u1001", "--k", "3"], capsys)
    assert code == 0 and out.startswith("u1001: m") and out.count("(") == 3


# ---------------------------------------------------------------------------------------
# manners
# ---------------------------------------------------------------------------------------
def _parsers():
    ap = build_parser()
    yield ap
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    yield from sub.choices.values()


def test_every_option_has_help_and_shows_its_default():
    n = 0
    for parser in _parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.dest in ("help", "command"):
                continue
            assert action.help, (parser.prog, action.option_strings)
            if action.default not in (None, False) and not action.required \
                    and action.dest != "version":
                n += 1
                shown = formatter._get_help_string(action) % {"default": action.default}
                assert f"(default: {action.default})" in shown, (parser.prog, action.dest)
    assert n > 20
    train = next(p for p in _parsers() if p.prog.endswith(" train")).format_help()
    assert "(default: adagrad)" in train and "(default: 0.05)" in train


def test_help_answers_without_importing_numba(tmp_path):
    code = ("import sys, time; t = time.perf_counter(); from aprnb.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('NUMBA', 'numba' in sys.modules, 'scipy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert "NUMBA False False" in proc.stdout, proc.stdout + proc.stderr
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "aprnb", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "recommend" in proc.stdout
    assert time.perf_counter() - t0 < 5        # well under 1 s on a warm machine


def test_optimizer_default_is_adagrad():
    """Problem 5: the CLI trains with the paper's optimizer unless told otherwise."""
    a = build_parser().parse_args(["train", "--data", "x", "--out", "m.npz"])
    assert a.optimizer == "adagrad"


def test_missing_data_path_says_it_does_not_exist(tmp_path, capsys):
    """Problem 7: a missing --data path was reported as "cannot tell the format"."""
    code, _, err = run(["train", "--data", tmp_path / "nothing", "--out", tmp_path / "m.npz"],
                       capsys)
    assert code == 1 and "nothing does not exist" in err and "format" not in err
    assert os.listdir(tmp_path) == []


def test_demo_quick_explains_itself(capsys):
    code, out, _ = run(["demo", "--quick", "--threads", "1"], capsys)
    assert code == 0
    assert "too short to show the paper's result" in out
    assert "fair baseline" in out
    assert out.count("training ") >= 4 and "robustness:" in out


def test_min_value_from_the_cli(tmp_path, capsys):
    log = tmp_path / "ratings.csv"
    log.write_text("userId,movieId,rating\n" + "".join(
        f"{u},{i},{1 + (u + i) % 5}\n" for u in range(30) for i in range(12)))
    code, _, err = run(["train", "--train", log, "--split", "loo", "--out", tmp_path / "m.npz",
                        *TRAIN], capsys)
    assert code == 0, err
    full = aprnb.load(tmp_path / "m.npz").train_.nnz
    out = run_json(["train", "--train", log, "--split", "loo", "--min-value", "4", "--out",
                    tmp_path / "m4.npz", "--json", *TRAIN], capsys)
    assert out["data"]["split"]["min_value"] == 4
    assert out["data"]["train"] + out["data"]["test"] == 30 * 12 * 2 // 5 < full + 30
