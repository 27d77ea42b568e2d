"""Before/after A/B of two aprnb checkouts on Gowalla, interleaved, public API only.

    python -m bench.ab --before PATH --after PATH [--threads 1,2] [--rounds N] [--quick]
                       [--tasks apr_sgd,apr_adagrad,...] [--markdown FILE]

Each PATH is a checkout of the repository (a directory containing ``aprnb/``).
Each side runs in a worker process of its own (``bench/_ab_child.py``, started with
``PYTHONPATH=<PATH>`` and ``PATH`` as working directory, so it imports that
checkout's aprnb and uses that checkout's Numba cache). Both workers load Gowalla
once, run one untimed warm-up of every task at every thread count (JIT compilation
or cache load), then the rounds: in every round, for every thread count and every
task, both sides run back to back, the order alternating, so that a busy spell on
the machine hits both sides.

Tasks (64 factors, lr 0.05, reg 0, seeded; Numba and BLAS threads = the row's count):

* BPR and APR (eps 0.5, reg_adv 1) fits with ``optimizer="sgd"`` and ``"adagrad"``,
  and APR Adagrad in mini-batches of 512 (``apr_mb512``):
  ``history_[e]["seconds"]`` of epochs 2..N (per epoch), and the fit set-up time
  (wall time of ``fit`` minus the sum of its epoch seconds); the notes say whether
  the seeded one-thread fits of both sides gave bitwise identical factors;
* ``aprnb.evaluate((P, Q), train, test, k=20, protocol="holdout")`` on all Gowalla
  users with test items, on fixed factors (a seeded BPR fit made once by the
  *before* side, saved to a file and loaded by both);
* warm start: ``APR(...).fit(train, init=bpr_model)`` with a 2-epoch BPR model each
  side fits once: the whole fit call, its epoch seconds (2..N) and its set-up.

Reported: median [min-max] per side and the after/before ratio of the medians.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import common
from .common import Section, Stats

CHILD = Path(__file__).resolve().with_name("_ab_child.py")

#: task key -> (label, request)
TASKS = {
    "bpr_sgd": ("BPR SGD", {"op": "fit", "model": "BPR", "optimizer": "sgd"}),
    "bpr_adagrad": ("BPR Adagrad", {"op": "fit", "model": "BPR", "optimizer": "adagrad"}),
    "apr_sgd": ("APR SGD", {"op": "fit", "model": "APR", "optimizer": "sgd"}),
    "apr_adagrad": ("APR Adagrad", {"op": "fit", "model": "APR", "optimizer": "adagrad"}),
    "apr_mb512": ("APR Adagrad mini-batch 512",
                  {"op": "fit", "model": "APR", "optimizer": "adagrad", "batch_size": 512}),
    "evaluate": ("evaluate, all users, top-20 holdout", {"op": "evaluate"}),
    "warm": ("APR SGD warm start from a BPR model", {"op": "warm", "optimizer": "sgd"}),
}


#: the plain fit tasks
FITS = ("bpr_sgd", "bpr_adagrad", "apr_sgd", "apr_adagrad", "apr_mb512")


class Side:
    """One checkout in a worker process."""

    def __init__(self, name, path, data_dir):
        self.name, self.path = name, Path(path).resolve()
        if not (self.path / "aprnb" / "__init__.py").is_file():
            sys.exit(f"bench.ab: {path} is not a checkout of aprnb (no aprnb/__init__.py)")
        env = dict(os.environ, PYTHONPATH=str(self.path))
        env.pop("NUMBA_CACHE_DIR", None)     # each checkout its own (default) cache
        self.proc = subprocess.Popen([sys.executable, "-P", str(CHILD), str(data_dir)],
                                     cwd=str(self.path), env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if not self.proc.stdout.readline():
            sys.exit(f"bench.ab: the {name} worker ({self.path}) failed to start")
        self.info = self.ask({"op": "hello"})
        self.info["commit"] = common.git_commit(self.path)

    def ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died (request {req})")
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="checkout (directory containing aprnb/)")
    p.add_argument("--after", required=True, help="checkout (directory containing aprnb/)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5; 2 quick)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per fit, the first dropped (default 6; 3 quick)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None, help="also append the markdown to this file")
    p.add_argument("--tasks", default=",".join(TASKS),
                   help=f"comma-separated subset of {','.join(TASKS)} (default all)")
    args = p.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown or not args.tasks:
        p.error(f"--tasks: unknown {unknown}; choose from {','.join(TASKS)}")
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.epochs = args.epochs or (3 if args.quick else 6)
    if args.rounds < 1 or args.epochs < 2:
        p.error("--rounds must be >= 1 and --epochs >= 2")
    return args


def request(key, t, args):
    return dict(TASKS[key][1], threads=t, epochs=args.epochs, seed=args.seed)


def _record(res, side, key, t, out):
    """Add a worker answer to ``res[(key, t)][side][metric]``; report an error once."""
    if "error" in out:
        print(f"[bench.ab] {side.name} {key} t{t}: {out['error']}", file=sys.stderr)
        res.setdefault("errors", set()).add((side.name, key))
        return
    for metric, xs in out.items():
        if isinstance(xs, list):
            res.setdefault((key, t), {}).setdefault(side.name, {}) \
                .setdefault(metric, Stats()).add(*xs)
        else:
            res.setdefault("checks", {})[(side.name, key, metric)] = xs


def fixed_factors(sides, d, args):
    """A seeded BPR fit by the first side, saved once and loaded by every side."""
    path = str(Path(d) / "factors.npz")
    out = sides[0].ask({"op": "make_factors", "path": path, "model": "BPR",
                        "optimizer": "sgd", "epochs": 5 if args.quick else 20,
                        "seed": args.seed})
    if "error" in out:
        sys.exit(f"bench.ab: making the fixed factors failed: {out['error']}")
    for s in sides:
        s.ask({"op": "load_factors", "path": path})


def measure(sides, threads, args):
    """Warm-up, then the interleaved rounds; ``{(task, threads): {side: {metric: Stats}}}``."""
    for t in threads:
        for key in args.tasks:
            for s in sides:
                print(f"  warm-up {s.name} {key} t{t}", file=sys.stderr, flush=True)
                s.ask(request(key, t, args))
    res = {}
    for r in range(args.rounds):
        for t in threads:
            for n, key in enumerate(args.tasks):
                order = sides if (r + n) % 2 == 0 else sides[::-1]
                for s in order:
                    _record(res, s, key, t, s.ask(request(key, t, args)))
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return res


def _row(res, label, key, t, metric, unit):
    per = res.get((key, t), {})
    b = per.get("before", {}).get(metric, Stats())
    a = per.get("after", {}).get(metric, Stats())
    fmt = (lambda st: st.fmt_ms(1)) if unit == "ms" else (lambda st: st.fmt_s(3))
    return [label, t, fmt(b), fmt(a), common.ratio(a.median, b.median, 3)]


def rows(res, threads, tasks=tuple(TASKS)):
    out = []
    for t in threads:
        for key in FITS:
            if key in tasks:
                out.append(_row(res, f"{TASKS[key][0]} epoch, ms", key, t, "epoch", "ms"))
        if "evaluate" in tasks:
            out.append(_row(res, f"{TASKS['evaluate'][0]}, s", "evaluate", t, "wall", "s"))
        if "warm" in tasks:
            out.append(_row(res, f"{TASKS['warm'][0]}: whole fit, s", "warm", t, "wall", "s"))
            out.append(_row(res, f"{TASKS['warm'][0]}: epoch, ms", "warm", t, "epoch", "ms"))
        for key in FITS + ("warm",):
            if key in tasks:
                out.append(_row(res, f"fit set-up (wall - epochs), {TASKS[key][0]}, ms", key,
                                t, "setup", "ms"))
    return out


def notes(res, sides, args):
    checks = res.get("checks", {})
    same = [f"{s.name} recall@20 {checks.get((s.name, 'evaluate', 'recall@20'), float('nan')):.6f}"
            for s in sides]
    out = [f"{args.rounds} interleaved rounds after one warm-up of every task on each side; "
           f"{args.epochs} epochs per fit, epoch rows are the epochs 2..{args.epochs} of all "
           f"rounds; ratio = after / before of the medians.",
           "evaluate on the same fixed factors on both sides: " + ", ".join(same) + "."]
    same = []
    for key in FITS + ("warm",):
        b, a = (checks.get((side, key, "factors_t1")) for side in ("before", "after"))
        if a is not None and b is not None:
            same.append(f"{TASKS[key][0]} {'yes' if a == b else 'NO'}")
    if same:
        out.append("bitwise identical factors from the seeded one-thread fits (last round): "
                   + ", ".join(same) + ".")
    for s in sides:
        i = s.info
        out.append(f"{s.name}: `{s.path}` commit {i['commit']}, aprnb {i.get('version')} "
                   f"from `{i.get('aprnb_file')}`")
    out.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    if res.get("errors"):
        out.append(f"errors (rows n/a): {sorted(res['errors'])}")
    return out


def markdown(sections, args, argv, rep):
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    body = "\n".join(s.markdown() for s in sections)
    return (f"## A/B {stamp}: `python -m bench.ab {cmd}`\n\n{common.hardware_markdown(rep)}"
            f"\n\n{body}")


def main(argv=None):
    args = parse(argv)
    threads = common.thread_list(args.threads)
    rep = common.hardware_report()
    sides = []
    try:
        with tempfile.TemporaryDirectory(prefix="aprnb-ab-") as d:
            data = common.gowalla_dir()
            sides = [Side("before", args.before, data), Side("after", args.after, data)]
            if "evaluate" in args.tasks:
                fixed_factors(sides, d, args)
            res = measure(sides, threads, args)
    finally:
        for s in sides:
            s.close()
    sec = Section(f"A/B on Gowalla, before vs after (threads: {', '.join(map(str, threads))})",
                  ["figure", "threads", "before median [min-max]", "after median [min-max]",
                   "after / before"], rows(res, threads, args.tasks), notes(res, sides, args))
    md = markdown([sec], args, argv, rep)
    print(md)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(md + "\n")


if __name__ == "__main__":
    main()
