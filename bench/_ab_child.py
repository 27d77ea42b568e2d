"""Worker process of ``python -m bench.ab``: one checkout of aprnb, public API only.

Started as ``python -P bench/_ab_child.py DATA_DIR`` with ``PYTHONPATH=<checkout>``
and the checkout as working directory, so ``import aprnb`` finds that checkout and
nothing else (``-P``: the bench directory is not put on ``sys.path``). It imports
only the standard library, numpy, aprnb and (if installed) threadpoolctl, loads
Gowalla once, then answers one JSON request per stdin line with one JSON line.
Any exception becomes ``{"error": ...}`` so that the parent can report it and go on.

Only API that both sides of an A/B have: the constructor parameters (factors,
learning_rate, reg, epochs, optimizer, n_threads, random_state, show_progress,
eps, reg_adv), ``fit(train, init=...)``, ``history_[e]["seconds"]``,
``user_factors_``/``item_factors_``, ``aprnb.evaluate`` and
``aprnb.data.load_lightgcn``.
"""
import contextlib
import hashlib
import json
import sys
import time

import numpy as np


@contextlib.contextmanager
def blas_threads(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n):
        yield


def params(req):
    """Constructor parameters of a request."""
    p = dict(factors=64, learning_rate=0.05, reg=0.0, epochs=req["epochs"],
             optimizer=req.get("optimizer", "sgd"), n_threads=req["threads"],
             random_state=req["seed"], show_progress=False)
    if req.get("model", "BPR") == "APR":
        p.update(eps=0.5, reg_adv=1.0)
    if req.get("batch_size", 1) != 1:
        p["batch_size"] = req["batch_size"]
    return p


def timed_fit(model, train, init=None):
    """``{"epoch": seconds of epochs 2..N, "wall": fit call, "setup": wall - sum(epochs),
    "factors_tN": SHA-256 of the fitted factors}`` (N = threads: a seeded one-thread fit
    must give the same digest on both sides when a change keeps the arithmetic)."""
    t0 = time.perf_counter()
    if init is None:
        model.fit(train)
    else:
        model.fit(train, init=init)
    wall = time.perf_counter() - t0
    secs = [float(h["seconds"]) for h in model.history_]
    digest = hashlib.sha256(np.ascontiguousarray(model.user_factors_).tobytes()
                            + np.ascontiguousarray(model.item_factors_).tobytes()).hexdigest()
    return {"epoch": secs[1:], "wall": [wall], "setup": [wall - sum(secs)],
            f"factors_t{model.n_threads}": digest}


class Worker:
    def __init__(self, data_dir):
        import aprnb
        self.aprnb = aprnb
        ds = aprnb.data.load_lightgcn(data_dir)
        self.train, self.test = ds.train, ds.test
        self.factors = None
        self.init = {}

    def hello(self, req):
        import numba
        return {"aprnb_file": self.aprnb.__file__, "version": self.aprnb.__version__,
                "numba": numba.__version__, "shape": list(self.train.shape),
                "nnz": int(self.train.nnz)}

    def fit(self, req):
        cls = getattr(self.aprnb, req["model"])
        with blas_threads(req["threads"]):
            return timed_fit(cls(**params(req)), self.train)

    def warm(self, req):
        """``APR(...).fit(train, init=bpr_model)``; the BPR model is fitted once per seed."""
        key = req["seed"]
        if key not in self.init:
            self.init[key] = self.aprnb.BPR(**params(dict(req, epochs=2))).fit(self.train)
        with blas_threads(req["threads"]):
            return timed_fit(self.aprnb.APR(**params(dict(req, model="APR"))), self.train,
                             init=self.init[key])

    def make_factors(self, req):
        m = self.aprnb.BPR(**params(dict(req, threads=None))).fit(self.train)
        np.savez(req["path"], P=m.user_factors_, Q=m.item_factors_)
        return {}

    def load_factors(self, req):
        f = np.load(req["path"])
        self.factors = (f["P"], f["Q"])
        return {}

    def evaluate(self, req):
        t = req["threads"]
        with blas_threads(t):
            t0 = time.perf_counter()
            r = self.aprnb.evaluate(self.factors, self.train, self.test, k=20,
                                    protocol="holdout", n_threads=t)
            wall = time.perf_counter() - t0
        return {"wall": [wall], "recall@20": float(r["recall@20"]),
                "ndcg@20": float(r["ndcg@20"])}


def main():
    worker = Worker(sys.argv[1])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            out = getattr(worker, req["op"])(req)
        except Exception as exc:   # reported by the parent, which goes on
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
