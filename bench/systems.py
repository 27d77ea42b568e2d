"""Epoch times of the paper's systems beyond MF on Gowalla: CDAE, IRGAN, NeuMF, APR on NeuMF.

Each system of the study (:data:`aprnb.study.systems.SYSTEMS`, with the first of
its candidate settings) is fitted for a few epochs per round at every thread
count, interleaved with aprnb's MF-BPR and AMF (per-triple Adagrad, 64 factors)
as the yardstick, after one untimed warm-up fit each. A system that starts from
another model (IRGAN from MF-BPR, APR on NeuMF from NeuMF) starts from one fitted
once, before the rounds, so that only its own epochs are timed. Reported: the
kernel seconds per epoch (``history_[e]["seconds"]``; IRGAN: one round of its
discriminator and generator epochs), first epoch of every fit dropped, median
[min-max] over the rounds; and one full leave-one-out evaluation (all 40,981
items ranked for every user) of each trained model.
"""
import time

from . import common
from .common import Section, Stats, ratio


def _fitter(make, X, init=None):
    def run():
        m = make()
        m.fit(X, init=init)
        return {"kernel": [h["seconds"] for h in m.history_][1:], "model": m}
    return run


def _strip(fn, keep):
    """The timing callable of ``interleave`` (no model in the samples); keeps the last model."""
    def run():
        res = fn()
        keep[0] = res.pop("model")
        return res
    return run


def measure(X, threads, epochs, rounds, seed):
    """``(contenders meta, {name: {metric: Stats}}, {name: fitted model})``."""
    import aprnb
    from aprnb.study.systems import SYSTEMS, make_model
    paper = dict(factors=64, learning_rate=0.05, reg=0.0, init_std=0.01, optimizer="adagrad",
                 random_state=seed, show_progress=False)
    fns, meta, models = {}, {}, {}
    for t in threads:
        starts = {"MF-BPR": aprnb.BPR(**paper, epochs=epochs, n_threads=t).fit(X)}
        for name, cls, kw in (("MF-BPR", aprnb.BPR, {}), ("AMF", aprnb.APR, dict(eps=0.5))):
            key = f"{name} t{t}"
            models[key] = [None]
            fns[key] = _strip(_fitter(lambda cls=cls, kw=kw, t=t: cls(
                **paper, **kw, epochs=epochs, n_threads=t), X,
                starts["MF-BPR"] if name == "AMF" else None), models[key])
            meta[key] = (name, t)
        for s in SYSTEMS:
            def make(s=s, t=t):
                # the first candidate, as the study builds it, for ``epochs`` epochs
                return make_model(s, False, t, seed, {**s.grid[0], "epochs": epochs})
            init = starts.get(s.start) if s.start else None
            starts[s.name] = make().fit(X, init=init)
            key = f"{s.name} t{t}"
            models[key] = [None]
            fns[key] = _strip(_fitter(make, X, init), models[key])
            meta[key] = (s.name, t)
    res = common.interleave(fns, rounds=rounds, warmup=1)
    return meta, res, {k: v[0] for k, v in models.items()}


def evaluation_times(models, X, te):
    """Seconds of one full leave-one-out evaluation of each trained model (2 runs; one
    when the first takes over a minute)."""
    import aprnb
    out = {}
    for key, m in models.items():
        st = Stats()
        for _ in range(2):
            t0 = time.perf_counter()
            aprnb.evaluate(m, X, te, k=(100,), protocol="loo",
                           n_threads=int(key.rsplit("t", 1)[1]))
            st.add(time.perf_counter() - t0)
            if st.samples[-1] > 60:
                break
        out[key] = st
    return out


def run(args):
    from aprnb.data import leave_one_out
    X, te = leave_one_out(common.load_gowalla().train, random_state=args.seed)
    threads = common.thread_list(args.threads)
    epochs = 2 if args.quick else 3
    rounds = args.rounds or (2 if args.quick else 3)
    meta, res, models = measure(X, threads, epochs, rounds, args.seed)
    evals = evaluation_times(models, X, te)
    rows = []
    for key, (name, t) in meta.items():
        k = res[key]["kernel"]
        base = res.get(f"MF-BPR t{t}", {}).get("kernel")
        rows.append([name, t, k.fmt_s(), ratio(k.median, base.median) if base else "",
                     evals[key].fmt_s()])
    return [Section(f"Epoch times of the paper's systems on Gowalla, leave-one-out training "
                    f"part ({X.shape[0]} users x {X.shape[1]} items, {X.nnz} interactions)",
                    ["system", "threads", "s/epoch median [min-max]", "vs MF-BPR epoch",
                     "one full LOO evaluation, s"], rows,
                    [f"{rounds} interleaved rounds x {epochs} epochs per fit, first epoch of "
                     f"each fit dropped; settings: the first candidate of each system in "
                     f"aprnb/study/systems.py::SYSTEMS; MF-BPR and AMF: 64 factors, "
                     f"per-triple Adagrad, lr 0.05.",
                     "IRGAN's epoch is one round (its discriminator and generator epochs).",
                     "evaluation: aprnb.evaluate(protocol='loo', k=100) of the last fitted "
                     "model against the held-out item of every user, every item ranked; "
                     "median [min-max] of 2 runs (1 when the first took over a minute)."])], res


def main(argv=None):
    common.script_main(__doc__, run, argv,
                       parser=common.common_argparser(__doc__.splitlines()[0], rounds=True))


if __name__ == "__main__":
    main()
