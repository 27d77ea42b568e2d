"""``python -m aprnb demo``: the main job end to end on a synthetic data set.

Trains ItemPop, MF-BPR (per-triple Adagrad, the paper's optimizer) and AMF
(APR continued from the converged MF-BPR, against MF-BPR continued for the
same number of epochs), evaluates them under leave-one-out full ranking and
prints the accuracy and the robustness tables.
"""
import time

from .data import leave_one_out, make_synthetic
from .evaluation import evaluate
from .models import APR, BPR, ItemPop
from .perturbation import robustness


def _row(name, res, seconds, ks):
    cells = "".join(f"{res[f'hr@{k}']:>9.4f}{res[f'ndcg@{k}']:>10.4f}" for k in ks)
    return f"{name:<24}{cells}{seconds:>9.1f}"


def _stage(t_start, msg):
    print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)


def run_demo(quick=False, n_threads=None, seed=0):
    """Run the demo and print its tables; returns a dict of the metrics."""
    t_start = time.perf_counter()
    n_users, n_items = (1000, 800) if quick else (3000, 2000)
    bpr_epochs, more = (40, 20) if quick else (200, 100)
    if quick:
        print("--quick: a smoke test. Its runs are too short to show the paper's result: "
              "AMF may well come out below MF-BPR here, so do not read anything into the "
              "comparison.\n")
    X = make_synthetic(n_users=n_users, n_items=n_items, n_groups=10, mean_degree=40,
                       random_state=seed)
    train, test = leave_one_out(X, random_state=seed)
    print(f"synthetic data: {n_users} users, {n_items} items, {X.nnz} interactions; "
          f"leave-one-out split ({test.nnz} held-out items), full ranking")
    print(f"Why two MF-BPR rows: AMF continues a converged MF-BPR for {more} more epochs, so "
          f"the fair baseline is MF-BPR trained for the same {more} extra epochs; comparing "
          f"AMF with the {bpr_epochs}-epoch MF-BPR would credit APR with the gain of merely "
          f"training longer.\n")
    ks = (10, 100)
    common = dict(factors=64, learning_rate=0.05, reg=0.0, init_std=0.01, optimizer="adagrad",
                  n_threads=n_threads, random_state=seed, show_progress=False)
    results = {}

    def run(name, make):
        _stage(t_start, f"training {name} ...")
        t0 = time.perf_counter()
        model = make()
        secs = time.perf_counter() - t0
        res = evaluate(model, train, test, k=ks, protocol="loo", n_threads=n_threads)
        results[name] = (model, res, secs)
        return model

    run("ItemPop", lambda: ItemPop().fit(train))
    bpr = run(f"MF-BPR ({bpr_epochs} ep)", lambda: BPR(epochs=bpr_epochs, **common).fit(train))
    run(f"MF-BPR (+{more} ep)", lambda: BPR(epochs=more, **common).fit(train, init=bpr))
    run(f"AMF (+{more} ep APR)",
        lambda: APR(epochs=more, eps=0.5, reg_adv=1.0, **common).fit(train, init=bpr))
    _stage(t_start, "done training\n")
    head = f"{'model':<24}" + "".join(f"{'HR@' + str(k):>9}{'NDCG@' + str(k):>10}" for k in ks)
    print(head + f"{'fit s':>9}")
    print("-" * (len(head) + 9))
    for name, (_, res, secs) in results.items():
        print(_row(name, res, secs, ks))

    print()
    _stage(t_start, "robustness: perturbing the embeddings of the two continued models ...")
    print("robustness: relative change of NDCG@100 when every embedding row is moved by eps")
    print(f"{'model':<24}{'noise':<13}" + "".join(f"{'eps=' + str(e):>10}" for e in (0.5, 1.0)))
    for name in list(results)[2:]:
        rep = robustness(results[name][0], train, test, eps=(0.5, 1.0),
                         kinds=("adversarial", "random"), k=100, random_state=seed,
                         n_threads=n_threads)
        for kind in ("adversarial", "random"):
            ch = [r["ndcg@100 change"] for r in rep if r["kind"] == kind]
            print(f"{name:<24}{kind:<13}" + "".join(f"{c:>+10.1%}" for c in ch))
    print(f"\ndone in {time.perf_counter() - t_start:.1f} s")
    return {name: res for name, (_, res, _) in results.items()}
