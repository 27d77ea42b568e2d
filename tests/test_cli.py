"""Command line: ``python -m aprnb ...`` / :func:`aprnb.cli.main`.

Every bad invocation must exit with a one-line message on stderr that says what to fix
(code 2 for usage errors, 1 for failures such as a missing file or divergence), and must
leave the files it was pointed at exactly as they were (an existing
``--out`` model included). Most tests call ``main(argv)`` in-process (fast); two run
the real ``python -m aprnb`` in a subprocess.
"""
import hashlib
import os
import re
import subprocess
import sys

import numba
import numpy as np
import pytest

import aprnb
from aprnb.cli import main

QUIET = ["--threads", "1", "--seed", "0"]


# ---------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------
def run(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``main(argv)``; an escaping exception is reported
    as the code ``"raised <type>: <message>"`` so that assertions show it."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:                 # argparse errors
        code = e.code
    except Exception as e:                  # anything else is a bug: no traceback allowed
        code = f"raised {type(e).__name__}: {e}"
    out, err = capsys.readouterr()
    return code, out, err


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def state(folder):
    """Names and contents of every file below ``folder`` (detects partial/temp files)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = digest(p)
    return out


@pytest.fixture(scope="module")
def lightgcn(tmp_path_factory):
    """A 20-user x 15-item LightGCN folder (train.txt, test.txt with one item per user)."""
    folder = tmp_path_factory.mktemp("lg")
    rng = np.random.default_rng(0)
    test = [(u * 7) % 15 for u in range(20)]
    with open(folder / "train.txt", "w") as fh:
        for u in range(20):
            rest = [i for i in range(15) if i != test[u]]
            items = sorted(rng.choice(rest, 4, replace=False).tolist())
            fh.write(" ".join(map(str, [u] + items)) + "\n")
    with open(folder / "test.txt", "w") as fh:
        for u in range(20):
            fh.write(f"{u} {test[u]}\n")
    return folder


@pytest.fixture
def work(tmp_path, lightgcn):
    """A folder holding an existing model file ``model.npz`` trained on ``lightgcn``."""
    ds = aprnb.data.load_lightgcn(lightgcn)
    aprnb.BPR(factors=4, epochs=2, n_threads=1, random_state=0,
              show_progress=False).fit(ds.train).save(tmp_path / "model.npz")
    return tmp_path


def train_args(lightgcn, out, *extra):
    return ["train", "--data", lightgcn, "--epochs", "2", "--factors", "4", "--k", "5",
            "--quiet", "--out", out, *QUIET, *extra]


# ---------------------------------------------------------------------------------------
# the happy path (so that the failures below are failures of validation only)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["bpr", "apr", "vat", "itempop"])
def test_train_evaluate_robustness_round_trip(model, lightgcn, tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, stdout, err = run(train_args(lightgcn, out, "--model", model), capsys)
    assert code == 0, err
    assert "saved" in stdout and "recall@5=" in stdout
    loaded = aprnb.load(out)
    assert loaded.user_factors_.shape[0] == 20 and loaded.item_factors_.shape[0] == 15
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    code, stdout, err = run(["evaluate", "--model", out, "--data", lightgcn, "--k", "5",
                             *QUIET], capsys)
    assert code == 0 and "ndcg@5=" in stdout and "coverage@5" not in stdout, err
    code, stdout, err = run(["evaluate", "--model", out, "--data", lightgcn, "--k", "5",
                             "--beyond-accuracy", *QUIET], capsys)
    assert code == 0 and "coverage@5=" in stdout and "novelty@5=" in stdout, err
    code, stdout, err = run(["robustness", "--model", out, "--data", lightgcn, "--k", "5",
                             "--eps", "0.5", "--kinds", "random", "pgd", "--steps", "2",
                             *QUIET], capsys)
    assert code == 0 and "pgd" in stdout and "clean" in stdout, err


@pytest.mark.parametrize("model, sets", [
    ("cdae", ["hidden=4", "negatives=2"]),
    ("irgan", ["factors=4", "bpr_epochs=2", "d_epochs=1"]),
    ("neumf", ["factors=4", "layers=(8, 4)", "negatives=2", "batch_size=8"])])
def test_train_evaluate_recommend_the_paper_systems(model, sets, lightgcn, tmp_path, capsys):
    """``--model cdae/irgan/neumf`` with their own parameters through ``--set``."""
    out = tmp_path / "m.npz"
    args = [a for kv in sets for a in ("--set", kv)]
    code, stdout, err = run(["train", "--data", lightgcn, "--epochs", "2", "--k", "5",
                             "--quiet", "--out", out, "--model", model, *args, *QUIET], capsys)
    assert code == 0, err
    loaded = aprnb.load(out)
    assert type(loaded).__name__.lower() == model and loaded.epochs == 2
    for kv in sets:
        name, value = kv.split("=")
        assert loaded.get_params()[name] == eval(value), name
    code, stdout, err = run(["evaluate", "--model", out, "--data", lightgcn, "--k", "5",
                             *QUIET], capsys)
    assert code == 0 and "ndcg@5=" in stdout, err
    code, stdout, err = run(["recommend", "--model", out, "--k", "3", "--users", "0", "1",
                             "--threads", "1"], capsys)
    assert code == 0, err


def test_train_with_more_threads_than_numba_has(lightgcn, tmp_path, capsys):
    # a thread count above the available threads is honoured (that many data slices and
    # RNG streams), not rejected
    n = numba.config.NUMBA_NUM_THREADS + 1
    code, stdout, err = run(train_args(lightgcn, tmp_path / "m.npz", "--threads", n), capsys)
    assert code == 0, err
    assert aprnb.load(tmp_path / "m.npz").n_threads == n


def test_train_is_bitwise_reproducible_with_one_thread(lightgcn, tmp_path, capsys):
    for name in ("a.npz", "b.npz"):
        code, _, err = run(train_args(lightgcn, tmp_path / name, "--model", "apr",
                                      "--optimizer", "adagrad"), capsys)
        assert code == 0, err
    a, b = aprnb.load(tmp_path / "a.npz"), aprnb.load(tmp_path / "b.npz")
    assert a.user_factors_.tobytes() == b.user_factors_.tobytes()
    assert a.item_factors_.tobytes() == b.item_factors_.tobytes()


def test_train_set_passes_any_parameter_of_the_class(lightgcn, tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, _, err = run(train_args(lightgcn, out, "--model", "apr", "--set", "reg=0.01",
                                  "--set", "noise=random", "--set", "eps=1e-1"), capsys)
    assert code == 0, err
    m = aprnb.load(out)
    assert (m.reg, m.noise, m.eps) == (0.01, "random", 0.1)


def test_no_command_prints_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 0 and "train" in out and "evaluate" in out


# ---------------------------------------------------------------------------------------
# train: bad options exit 2, say what to fix, and never touch an existing --out file
# ---------------------------------------------------------------------------------------
TRAIN_BAD = [
    (["--epochs", "-1"], "epochs must be an integer >= 0"),
    (["--factors", "0"], "factors must be an integer >= 1"),
    (["--lr", "0"], "learning_rate must be > 0"),
    (["--lr", "-0.5"], "learning_rate must be > 0"),
    (["--lr", "nan"], "learning_rate must be finite"),
    (["--lr", "inf"], "learning_rate must be finite"),
    (["--reg", "-1"], "reg must be >= 0"),
    (["--init-std", "-1"], "init_std must be >= 0"),
    (["--threads", "0"], "n_threads must be >= 1"),
    (["--threads", "1000000"], "n_threads=1000000 exceeds the 1024 aprnb supports"),
    (["--seed", "-1"], "random_state must be a non-negative int"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--model", "apr", "--eps", "0"], "eps must be > 0"),
    (["--model", "apr", "--eps", "nan"], "eps must be finite"),
    (["--model", "apr", "--reg-adv", "-1"], "reg_adv must be >= 0"),
    (["--model", "apr", "--bpr-epochs", "-1"], "bpr_epochs must be an integer >= 0"),
    (["--set", "reg"], "expected NAME=VALUE"),
    (["--set", "colour=2"], "BPR has no parameter 'colour'"),
    (["--set", "reg=-1"], "reg must be >= 0"),
]


@pytest.mark.parametrize("extra,fragment", TRAIN_BAD, ids=[" ".join(c[0]) for c in TRAIN_BAD])
def test_train_bad_option(extra, fragment, lightgcn, work, capsys):
    before = state(work)
    code, out, err = run(train_args(lightgcn, work / "model.npz", *extra), capsys)
    assert code == 2, (code, err)
    assert err.startswith("aprnb train: error:") and fragment in err, err
    assert "Traceback" not in err
    assert state(work) == before


@pytest.mark.parametrize("extra", [["--epochs", "x"], ["--model", "foo"],
                                   ["--threads", "1.5"], ["--optimizer", "adam"],
                                   ["--dtype", "int32"], ["--k"], ["--format", "csv"]],
                         ids=lambda e: " ".join(e))
def test_train_unparsable_option_exits_2(extra, lightgcn, work, capsys):
    before = state(work)
    code, _, err = run(train_args(lightgcn, work / "model.npz", *extra), capsys)
    assert code == 2 and "error: argument" in err, err
    assert state(work) == before


def test_train_missing_required_arguments(tmp_path, capsys):
    code, _, err = run(["train"], capsys)
    assert code == 2 and "required: --out" in err
    code, _, err = run(["train", "--out", tmp_path / "m.npz"], capsys)
    assert code == 2 and "pass --data PATH" in err, err
    assert os.listdir(tmp_path) == []


def test_unknown_command(capsys):
    code, _, err = run(["fit"], capsys)
    assert code == 2 and "invalid choice: 'fit'" in err


def test_train_bad_init(lightgcn, work, capsys):
    (work / "garbage.npz").write_bytes(b"\x00" * 100)
    other = work / "other.npz"
    aprnb.BPR(factors=3, epochs=1, n_threads=1, random_state=0, show_progress=False).fit(
        np.eye(5)).save(other)
    cases = [(work / "missing.npz", 1, "missing.npz does not exist"),
             (work, 2, "director|folder"),
             (work / "garbage.npz", 2, "not a readable aprnb model file"),
             (other, 2, "init factors have shapes")]
    for init, expected, fragment in cases:
        before = state(work)
        code, _, err = run(train_args(lightgcn, work / "model.npz", "--init", init), capsys)
        assert code == expected, (init, code, err)
        assert re.search(fragment, err), err
        assert state(work) == before


def test_train_bad_data_paths(lightgcn, work, tmp_path, capsys):
    csv = tmp_path / "log.csv"
    csv.write_text("u1,i1\nu1,i2\nu2,i1\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.txt").write_text("0 1 2\n1 x\n")
    (broken / "test.txt").write_text("0 3\n")
    cases = [
        (["--data", tmp_path / "nodata"], 1, "nodata does not exist"),
        (["--data", tmp_path / "nodata", "--format", "lightgcn"], 1, "nodata does not exist"),
        (["--data", csv, "--format", "lightgcn"], 2, "not a directory"),
        (["--data", lightgcn, "--format", "ncf"], 1, "train.rating does not exist"),
        (["--data", lightgcn, "--format", "lastfm"], 1, "train.tsv does not exist"),
        (["--data", csv], 2, "has no test set; pass split='loo'"),
        (["--data", broken], 2, "train.txt, line 2: item id 'x' is not an integer"),
        (["--train", csv], 2, "--train needs --test PATH"),
        (["--test", csv], 2, "--test and --negatives go with --train"),
        (["--data", lightgcn, "--train", csv], 2, "either --data or --train"),
    ]
    for data, expected, fragment in cases:
        before = state(work)
        argv = ["train", *data, "--epochs", "1", "--factors", "2", "--quiet",
                "--out", work / "model.npz", *QUIET]
        code, out, err = run(argv, capsys)
        assert code == expected and fragment in err, (data, code, err)
        assert err.count("\n") == 1, err
        assert "trained" not in out
        assert state(work) == before


def test_train_bad_out_path_keeps_folder_clean(lightgcn, work, capsys):
    before = state(work)
    for out, expected, fragment in [(work / "nofolder" / "m.npz", 1, "does not exist; create"),
                                    ("", 2, "--out is empty")]:
        code, _, err = run(train_args(lightgcn, out), capsys)
        assert code == expected and fragment in err, err
        assert state(work) == before


def test_train_out_is_a_directory(lightgcn, work, capsys):
    target = work / "models"
    target.mkdir()
    before = state(work)
    code, _, err = run(train_args(lightgcn, target), capsys)
    assert code == 2, code
    assert "director" in err or "folder" in err, err
    assert state(work) == before and target.is_dir()


def test_train_bad_k_does_not_overwrite_existing_model(lightgcn, work, capsys):
    """``--k 0`` is known to be invalid before training; the old --out must survive."""
    before = state(work)
    code, _, err = run(train_args(lightgcn, work / "model.npz") + ["--k", "0"], capsys)
    assert code == 2 and "k must be an integer >= 1" in err, err
    assert state(work) == before


def test_train_divergence_exits_1_and_keeps_existing_model(lightgcn, work, capsys):
    before = state(work)
    argv = train_args(lightgcn, work / "model.npz", "--lr", "1e30", "--epochs", "5")
    code, _, err = run(argv, capsys)
    assert code == 1, code
    assert "diverged" in err and "learning_rate" in err, err
    assert state(work) == before


def test_train_warm_start_divergence_keeps_its_own_init_file(lightgcn, work, capsys):
    before = state(work)
    model = work / "model.npz"
    argv = train_args(lightgcn, model, "--init", model, "--lr", "1e30", "--epochs", "5")
    code, _, err = run(argv, capsys)
    assert code == 1 and "diverged" in err, (code, err)
    assert state(work) == before


def test_train_keyboard_interrupt_exits_130_and_keeps_existing_model(
        lightgcn, work, capsys, monkeypatch):
    def interrupted_fit(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(aprnb.BPR, "fit", interrupted_fit)
    before = state(work)
    code, _, err = run(train_args(lightgcn, work / "model.npz"), capsys)
    assert code == 130 and "interrupted" in err
    assert state(work) == before


# ---------------------------------------------------------------------------------------
# evaluate, robustness, demo, reproduce
# ---------------------------------------------------------------------------------------
def test_evaluate_bad_model_files(lightgcn, work, capsys):
    (work / "garbage.npz").write_bytes(os.urandom(200))
    (work / "log.csv").write_text("u1,i1\n")
    small = work / "small.npz"
    aprnb.BPR(factors=2, epochs=1, n_threads=1, random_state=0, show_progress=False).fit(
        np.eye(4)).save(small)
    cases = [(work / "missing.npz", 1, "does not exist"),
             (work / "garbage.npz", 2, "not a readable aprnb model file"),
             (work / "log.csv", 2, "not a readable aprnb model file"),
             (small, 2, "shape (20, 15) does not match")]
    for model, expected, fragment in cases:
        before = state(work)
        code, out, err = run(["evaluate", "--model", model, "--data", lightgcn,
                              "--threads", "1"], capsys)
        assert code == expected and err.startswith("aprnb evaluate: error:"), (model, code, err)
        assert fragment in err, err
        assert out == ""
        assert state(work) == before


@pytest.mark.parametrize("extra,fragment", [
    (["--k", "0"], "k must be an integer >= 1"),
    (["--threads", "0"], "n_threads must be >= 1"),
    (["--threads", "1000000"], "n_threads=1000000 exceeds the 1024 aprnb supports"),
    (["--split", "loo", "--split-seed", "-1"], "random_state must be a non-negative int"),
], ids=["k=0", "threads=0", "threads=1e6", "seed=-1"])
def test_evaluate_bad_option(extra, fragment, lightgcn, work, capsys):
    before = state(work)
    argv = ["evaluate", "--model", work / "model.npz", "--data", lightgcn, "--threads", "1",
            *extra]
    code, _, err = run(argv, capsys)
    assert code == 2 and fragment in err, (code, err)
    assert state(work) == before


def test_evaluate_loo_protocol_needs_one_test_item_per_user(lightgcn, work, capsys):
    multi = work / "multi"
    multi.mkdir()
    (multi / "train.txt").write_text((lightgcn / "train.txt").read_text())
    train = [set(map(int, line.split()[1:]))
             for line in (lightgcn / "train.txt").read_text().splitlines()]
    (multi / "test.txt").write_text("".join(
        f"{u} " + " ".join(map(str, sorted(set(range(15)) - train[u])[:2])) + "\n"
        for u in range(20)))
    before = state(work)
    argv = ["evaluate", "--model", work / "model.npz", "--data", multi, "--protocol", "loo",
            *QUIET]
    code, _, err = run(argv, capsys)
    assert code == 2 and "at most one test item per user" in err, (code, err)
    assert state(work) == before


@pytest.mark.parametrize("extra,fragment", [
    (["--eps", "0"], "eps must be > 0"),
    (["--eps", "nan"], "eps must be finite"),
    (["--eps", "-1", "0.5"], "eps must be > 0"),
    (["--kinds", "pgd", "--steps", "0"], "steps must be an integer >= 1"),
    (["--seed", "-1"], "random_state must be a non-negative int"),
    (["--k", "0"], "k must be an integer >= 1"),
    (["--threads", "0"], "n_threads must be >= 1"),
    (["--threads", "1000000"], "n_threads=1000000 exceeds the 1024 aprnb supports"),
], ids=["eps=0", "eps=nan", "eps<0", "steps=0", "seed=-1", "k=0", "threads=0",
        "threads=1e6"])
def test_robustness_bad_option(extra, fragment, lightgcn, work, capsys):
    before = state(work)
    argv = ["robustness", "--model", work / "model.npz", "--data", lightgcn, "--k", "5",
            "--threads", "1", *extra]
    code, _, err = run(argv, capsys)
    assert code == 2 and fragment in err, (code, err)
    assert state(work) == before


def test_robustness_missing_model(lightgcn, tmp_path, capsys):
    code, _, err = run(["robustness", "--model", tmp_path / "none.npz", "--data", lightgcn],
                       capsys)
    assert code == 1 and "does not exist" in err


def test_demo_bad_threads(capsys):
    code, _, err = run(["demo", "--quick", "--threads", "0"], capsys)
    assert code == 2 and "n_threads must be >= 1" in err


def test_reproduce_missing_data(tmp_path, capsys):
    code, _, err = run(["reproduce", "--data", tmp_path / "nodata", "--out", tmp_path / "res",
                        "--quick", "--threads", "1"], capsys)
    assert code == 1 and "nodata does not exist" in err


@pytest.mark.parametrize("systems, fragment", [
    ("CDAE,Neumf", "unknown system(s) ['Neumf']"),
    ("NeuMF + APR", "starts from 'NeuMF'"),
])
def test_reproduce_bad_systems_fail_before_any_work(systems, fragment, tmp_path, capsys):
    code, _, err = run(["reproduce", "--data", tmp_path / "nodata", "--out", tmp_path / "res",
                        "--quick", "--threads", "1", "--systems", systems], capsys)
    assert code == 2 and fragment in err
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------------------------
# the real executable
# ---------------------------------------------------------------------------------------
def _python_m(args, cwd):
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "aprnb", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_python_m_aprnb_reports_errors_with_exit_codes(tmp_path):
    proc = _python_m(["train", "--data", tmp_path / "nodata", "--out", tmp_path / "m.npz",
                      "--quiet"], tmp_path)
    assert proc.returncode == 1
    assert "aprnb train: error:" in proc.stderr and "nodata does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    (tmp_path / "log.csv").write_text("a,b\n")
    proc = _python_m(["train", "--data", tmp_path / "log.csv", "--out", tmp_path / "m.npz",
                      "--quiet"], tmp_path)
    assert proc.returncode == 2 and "has no test set" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["log.csv"]


def test_python_m_aprnb_version(tmp_path):
    proc = _python_m(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"aprnb {aprnb.__version__}"


@pytest.mark.parametrize("command", [["evaluate"], ["robustness", "--eps", "0.5"]])
def test_backend_ray_without_ray_says_how_to_install_it(command, lightgcn, work, capsys,
                                                        monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)             # import ray fails
    code, out, err = run([*command, "--model", work / "model.npz", "--data", lightgcn,
                          "--backend", "ray", *QUIET], capsys)
    assert code == 1 and out == "", err
    assert len(err.strip().splitlines()) == 1 and "pip install 'aprnb[ray]'" in err
