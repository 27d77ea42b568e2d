"""Evaluation and robustness on Ray (``backend="ray"``) give the local results, bit for bit.

The module starts one local Ray with 2 CPUs for all its tests (Ray takes seconds to
start) and shuts it down at the end. Ray is imported directly, not skipped when absent:
CI installs the ``ray`` extra (README, "Run the tests").
"""
import json

import numpy as np
import pytest
import ray
import scipy.sparse as sp

import aprnb
from aprnb.cli import main
from aprnb.data import leave_one_out, make_synthetic
from aprnb.evaluation import _ray, evaluate
from aprnb.perturbation import robustness


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """A local Ray cluster of 2 CPUs, for this module only."""
    assert not ray.is_initialized(), "another test left Ray running"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error",
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def split():
    """(train, test) of 300 users x 200 items: one test item per user (leave-one-out)."""
    return leave_one_out(make_synthetic(n_users=300, n_items=200, random_state=0),
                         random_state=0)


@pytest.fixture
def ray_calls(monkeypatch):
    """The number of evaluations run through Ray so far (a list, one entry per call)."""
    calls, run = [], _ray.run

    def counted(*args, **kwargs):
        calls.append(1)
        return run(*args, **kwargs)

    monkeypatch.setattr(_ray, "run", counted)
    return calls


def factors(train, dtype, seed=0, d=8):
    """Continuous random factors: no ties, so every last bit of a score counts."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((train.shape[0], d)).astype(dtype),
            rng.standard_normal((train.shape[1], d)).astype(dtype))


def assert_identical(got, ref):
    """Same keys; scalars ``==`` (NaN matches NaN) and arrays equal element by element,
    with the same dtype."""
    assert set(got) == set(ref)
    for key, want in ref.items():
        if key == "per_user":
            assert_identical(got[key], want)
        elif isinstance(want, np.ndarray):
            assert got[key].dtype == want.dtype, key
            np.testing.assert_array_equal(got[key], want, err_msg=key, strict=True)
        else:
            assert got[key] == want or (np.isnan(want) and np.isnan(got[key])), key


def negatives_for(train, seed=0, n_neg=30):
    rng = np.random.default_rng(seed)
    neg = rng.integers(-1, train.shape[1], size=(train.shape[0], n_neg))
    neg[::7] = -1                            # users without a negative are not evaluated
    return neg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("protocol", ["holdout", "loo", "sampled"])
def test_ray_results_equal_local_results(split, protocol, dtype):
    train, test = split
    P, Q = factors(train, dtype)
    kw = dict(k=(5, 20), protocol=protocol, per_user=True,
              beyond_accuracy=protocol != "sampled",
              negatives=negatives_for(train) if protocol == "sampled" else None)
    ref = evaluate((P, Q), train, test, **kw)
    got = evaluate((P, Q), train, test, backend="ray", **kw)
    assert ref["n_users"] > 200
    assert_identical(got, ref)


@pytest.mark.parametrize("protocol", ["loo", "sampled"])
def test_a_model_with_its_own_scorer_on_ray(split, protocol):
    """NeuMF ranks through its own scorer (the object store holds it, tasks take subsets):
    the same results as local."""
    train, test = split
    model = aprnb.NeuMF(factors=4, layers=(8, 4), epochs=1, n_threads=1, random_state=0,
                        show_progress=False).fit(train)
    kw = dict(k=(5, 20), protocol=protocol, per_user=True,
              negatives=negatives_for(train) if protocol == "sampled" else None)
    ref = evaluate(model, train, test, **kw)
    assert ref["n_users"] > 200
    assert_identical(evaluate(model, train, test, backend="ray", **kw), ref)


def test_holdout_with_several_test_items_and_a_user_subset(split):
    """Several test items per user, users given out of order, no exclusion."""
    train, _ = split
    test = make_synthetic(n_users=300, n_items=200, random_state=1)
    test = test - test.multiply(train)
    P, Q = factors(train, np.float32, seed=1)
    users = np.random.default_rng(2).permutation(300)[:180]
    kw = dict(k=(1, 7, 50), protocol="holdout", users=users, per_user=True,
              beyond_accuracy=True, exclude_train=False)
    ref = evaluate((P, Q), train, test, **kw)
    assert ref["n_users"] > 100 and np.diff(test.indptr).max() > 1
    assert_identical(evaluate((P, Q), train, test, backend="ray", **kw), ref)


@pytest.mark.parametrize("tasks_per_cpu", [1, 100])
def test_independent_of_the_split_into_tasks(split, monkeypatch, tasks_per_cpu):
    """One task per CPU, or one task per user: the same results."""
    train, test = split
    P, Q = factors(train, np.float64, seed=3)
    monkeypatch.setattr(_ray, "TASKS_PER_CPU", tasks_per_cpu)
    kw = dict(k=(3, 10), protocol="loo", users=np.arange(0, 300, 3), per_user=True,
              beyond_accuracy=True)
    assert_identical(evaluate((P, Q), train, test, backend="ray", **kw),
                     evaluate((P, Q), train, test, **kw))


def test_tasks_of_two_threads(split):
    train, test = split
    P, Q = factors(train, np.float32, seed=4)
    kw = dict(k=(10,), protocol="holdout", per_user=True, beyond_accuracy=True)
    assert_identical(evaluate((P, Q), train, test, backend="ray", n_threads=2, **kw),
                     evaluate((P, Q), train, test, **kw))


def test_no_user_to_evaluate(split):
    train, test = split
    P, Q = factors(train, np.float32)
    empty = test[:0].copy()
    empty.resize(test.shape)
    kw = dict(k=(5,), protocol="holdout", per_user=True, beyond_accuracy=True)
    got = evaluate((P, Q), train, empty, backend="ray", **kw)
    assert got["n_users"] == 0 and np.isnan(got["recall@5"]) and np.isnan(got["gini@5"])
    assert_identical(got, evaluate((P, Q), train, empty, **kw))


def test_scores_past_float32_are_computed_in_float64_for_every_task():
    """One user's score would overflow float32, so the evaluation scores in float64: also
    in the tasks of the other users, for whom float32 would tie item 1 with item 0
    (``1 + 1e-8 == 1`` in float32) and so rank their test item 1 second, not first."""
    n = 40
    P = np.ones((n, 2), dtype=np.float32)
    P[0] = (1e38, 0.0)                      # |p| |q| > float32 max / 4
    Q = np.array([[1, 0], [1, 1e-8], [0, 0]], dtype=np.float32)
    test = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), np.ones(n, int))),
                         shape=(n, 3))
    train = sp.csr_matrix((n, 3), dtype=np.float32)
    kw = dict(k=(1,), protocol="loo", per_user=True)
    ref = evaluate((P, Q), train, test, **kw)
    assert ref["hr@1"] == (n - 1) / n           # float64: item 1 ahead for all but user 0
    assert_identical(evaluate((P, Q), train, test, backend="ray", **kw), ref)


def test_robustness_on_ray_equals_local(split, ray_calls):
    train, test = split
    model = aprnb.BPR(factors=8, epochs=3, n_threads=1, random_state=0,
                      show_progress=False).fit(train)
    kw = dict(eps=(0.5, 2.0), kinds=("adversarial", "random"), k=(5, 20), random_state=0)
    ref = robustness(model, train, test, **kw)
    got = robustness(model, train, test, backend="ray", **kw)
    assert len(ref) == 5 and ref[0]["hr@20"] > 0
    assert list(got) == list(ref) and str(got) == str(ref)
    assert len(ray_calls) == 5                  # every row was evaluated on Ray


@pytest.mark.parametrize("backend", ["Ray", "dask", "", None, 1])
def test_bad_backend(split, backend):
    train, test = split
    P, Q = factors(train, np.float32)
    with pytest.raises(ValueError, match="backend must be one of"):
        evaluate((P, Q), train, test, backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        robustness((P, Q), train, test, backend=backend)


@pytest.mark.parametrize("n_threads", [0, -1])
def test_bad_thread_count_on_ray(split, n_threads):
    train, test = split
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        evaluate(factors(train, np.float32), train, test, backend="ray", n_threads=n_threads)


def test_more_threads_per_task_than_a_node_has(split):
    """Ray would wait for ever for a 3-CPU node: a ValueError instead."""
    train, test = split
    with pytest.raises(ValueError, match="exceeds the 2 CPUs of the largest Ray node"):
        evaluate(factors(train, np.float32), train, test, backend="ray", n_threads=3)


def test_without_ray_the_error_says_how_to_install_it(split, monkeypatch):
    train, test = split
    monkeypatch.setitem(__import__("sys").modules, "ray", None)    # import ray fails
    with pytest.raises(ImportError, match=r"pip install 'aprnb\[ray\]'"):
        evaluate(factors(train, np.float32), train, test, backend="ray")


def test_command_line_backend_ray(tmp_path, capsys, ray_calls):
    """``aprnb evaluate/robustness --backend ray`` print what the local backend prints."""
    rng = np.random.default_rng(0)
    with open(tmp_path / "train.txt", "w") as fh, open(tmp_path / "test.txt", "w") as ft:
        for u in range(40):
            items = rng.choice(30, 6, replace=False)
            fh.write(" ".join(map(str, [u, *sorted(items[1:])])) + "\n")
            ft.write(f"{u} {items[0]}\n")
    out = tmp_path / "m.npz"
    common = ["--data", tmp_path, "--k", "5", "--threads", "1", "--json"]
    assert main([str(a) for a in ["train", "--epochs", "2", "--factors", "4", "--quiet",
                                  "--out", out, *common]]) == 0
    capsys.readouterr()
    for command in (["evaluate", "--beyond-accuracy"],
                    ["robustness", "--eps", "0.5", "--kinds", "random"]):
        printed = []
        for backend in ("local", "ray"):
            argv = [*command, "--model", out, *common, "--backend", backend]
            assert main([str(a) for a in argv]) == 0
            printed.append(json.loads(capsys.readouterr().out))
        assert printed[0] == printed[1]
        assert ray_calls, "--backend ray did not run on Ray"
        ray_calls.clear()
        assert "coverage@5" in json.dumps(printed[0]) or "rows" in printed[0]
