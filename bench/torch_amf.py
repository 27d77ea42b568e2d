"""AMF (APR on matrix factorisation) in PyTorch, with the official code's mini-batch semantics.

A peer for ``bench/train.py``, written from the description in
``shared/docs/apr.md`` (the official TensorFlow ``AMF.py``):

* mini-batches of 512 triples, one uniform negative per positive (rejection
  sampling against the user's training items), every ``(u, i)`` once per epoch;
* Adagrad, learning rate 0.05, initial accumulator 0.1 (TensorFlow 1's default);
  embeddings initialised with a truncated normal of std 0.01; reg 0;
* before every step, Delta = the gradient of the **summed** batch BPR loss with
  respect to the embedding tables, taken by autograd (a row used twice in the
  batch gets the sum), L2-normalised per row, times ``eps``; rows not in the
  batch get zero; then one Adagrad step on
  ``sum softplus(-x) + reg_adv * sum softplus(-x_adv)`` with Delta held constant.

Two implementations of the same step:

``"sparse"`` (default; what a careful PyTorch user writes): embedding lookups
with sparse gradients; the autograd gradient w.r.t. each table is a sparse COO
tensor, ``coalesce()`` sums repeated rows, the values are normalised per row;
``torch.optim.Adagrad`` applies the sparse update to the touched rows only.

``"dense"`` (the TensorFlow graph transcribed literally): dense gradient tables
(TF converts the IndexedSlices to a dense tensor for ``l2_normalize``), dense
Delta tables, lookups into ``P + Delta_P``, and a dense Adagrad step.

Requires ``torch`` (an optional bench extra).
"""
import time
import warnings

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the caller reports the skip
    torch = None

# torch's sparse Adagrad warns once that it skips sparse invariant checks.
warnings.filterwarnings("ignore", message="Sparse invariant checks")


def sample_negatives(indptr, indices, users, n_items, rng):
    """One uniform negative per entry of ``users`` by vectorised rejection sampling.

    ``indices`` must be sorted within each CSR row (it is for aprnb data), so the
    keys ``u * n_items + i`` are globally sorted and membership is a binary search.
    """
    users = np.asarray(users, dtype=np.int64)
    deg = np.diff(indptr)
    keys = np.repeat(np.arange(len(deg), dtype=np.int64), deg) * n_items + indices
    neg = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    todo = np.arange(len(users))
    while todo.size:
        k = users[todo] * n_items + neg[todo]
        pos = np.searchsorted(keys, k)
        pos[pos >= len(keys)] = len(keys) - 1
        hit = keys[pos] == k
        todo = todo[hit]
        neg[todo] = rng.integers(0, n_items, size=todo.size, dtype=np.int64)
    return neg


class TorchAMF:
    """AMF trained with mini-batch Adagrad in PyTorch (see the module docstring)."""

    def __init__(self, n_users, n_items, factors=64, eps=0.5, reg_adv=1.0, learning_rate=0.05,
                 batch_size=512, init_std=0.01, initial_accumulator=0.1, mode="sparse",
                 n_threads=1, seed=0):
        if torch is None:
            raise ImportError("torch is not installed: pip install torch (CPU wheel)")
        if mode not in ("sparse", "dense"):
            raise ValueError(f"mode must be 'sparse' or 'dense', got {mode!r}")
        torch.set_num_threads(int(n_threads))
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.eps, self.reg_adv, self.batch_size, self.mode = eps, reg_adv, batch_size, mode
        self.n_threads = int(n_threads)

        def table(n):
            w = torch.empty(n, factors)
            # TF's truncated_normal: redraw beyond two standard deviations.
            torch.nn.init.trunc_normal_(w, std=init_std, a=-2 * init_std, b=2 * init_std,
                                        generator=self.gen)
            return torch.nn.Parameter(w)

        self.P = table(n_users)
        self.Q = table(n_items)
        self.opt = torch.optim.Adagrad([self.P, self.Q], lr=learning_rate,
                                       initial_accumulator_value=initial_accumulator)

    # -- one step -------------------------------------------------------------------
    def _step_sparse(self, u, i, j):
        P, Q, eps = self.P, self.Q, self.eps
        pu = F.embedding(u, P, sparse=True)
        qi = F.embedding(i, Q, sparse=True)
        qj = F.embedding(j, Q, sparse=True)
        loss = F.softplus(-(pu * (qi - qj)).sum(1)).sum()
        # Adversary: autograd gradient of the summed batch loss w.r.t. the tables.
        gP, gQ = torch.autograd.grad(loss, (P, Q), retain_graph=True)
        gP, gQ = gP.coalesce(), gQ.coalesce()          # sums the rows used twice
        rP, rQ = gP.indices()[0], gQ.indices()[0]      # sorted, unique rows
        dP = eps * F.normalize(gP.values(), dim=1, eps=1e-6)
        dQ = eps * F.normalize(gQ.values(), dim=1, eps=1e-6)
        du = dP[torch.searchsorted(rP, u)]
        di = dQ[torch.searchsorted(rQ, i)]
        dj = dQ[torch.searchsorted(rQ, j)]
        adv = F.softplus(-((pu + du) * ((qi + di) - (qj + dj))).sum(1)).sum()
        return self._descend(loss, adv)

    def _step_dense(self, u, i, j):
        P, Q, eps = self.P, self.Q, self.eps
        loss = F.softplus(-(P[u] * (Q[i] - Q[j])).sum(1)).sum()
        gP, gQ = torch.autograd.grad(loss, (P, Q), retain_graph=True)   # dense tables
        dP = eps * F.normalize(gP, dim=1, eps=1e-6)   # zero rows stay zero
        dQ = eps * F.normalize(gQ, dim=1, eps=1e-6)
        Pa, Qa = P + dP, Q + dQ                        # embedding_P + delta_P, as in TF
        adv = F.softplus(-(Pa[u] * (Qa[i] - Qa[j])).sum(1)).sum()
        return self._descend(loss, adv)

    def _descend(self, loss, adv):
        """One Adagrad step on ``loss + reg_adv * adv`` (Delta held constant); the objective."""
        total = loss + self.reg_adv * adv
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return float(total.detach())

    def step(self, u, i, j):
        return self._step_sparse(u, i, j) if self.mode == "sparse" else self._step_dense(u, i, j)

    # -- epochs ---------------------------------------------------------------------
    def epoch_triples(self, X, pos_users, pos_items):
        """Shuffled positives and fresh negatives for one epoch (the official order)."""
        order = self.rng.permutation(len(pos_users))
        u = pos_users[order]
        i = pos_items[order]
        j = sample_negatives(X.indptr, X.indices, u, X.shape[1], self.rng)
        return (torch.from_numpy(u.astype(np.int64)), torch.from_numpy(i.astype(np.int64)),
                torch.from_numpy(j))

    def run_batches(self, u, i, j, n_batches=None, max_seconds=None):
        """Train on the first ``n_batches`` mini-batches; per-batch seconds.

        Stops early (after at least 3 batches) once ``max_seconds`` have passed.
        """
        torch.set_num_threads(self.n_threads)
        bs = self.batch_size
        n = len(u)
        total = (n + bs - 1) // bs if n_batches is None else min(n_batches, (n + bs - 1) // bs)
        times = []
        start = time.perf_counter()
        for b in range(total):
            t0 = time.perf_counter()
            self.step(u[b * bs:(b + 1) * bs], i[b * bs:(b + 1) * bs], j[b * bs:(b + 1) * bs])
            times.append(time.perf_counter() - t0)
            if max_seconds is not None and b >= 2 and time.perf_counter() - start > max_seconds:
                break
        return np.asarray(times)


def positives(X):
    deg = np.diff(X.indptr)
    return np.repeat(np.arange(X.shape[0], dtype=np.int64), deg), X.indices.astype(np.int64)


def _selfcheck():
    """Delta of the sparse step equals the dense one on a tiny problem (run this file)."""
    import scipy.sparse as sp
    X = sp.random(20, 30, density=0.3, format="csr", random_state=1)
    X.sort_indices()
    pu, pi = positives(X)
    out = []
    for mode in ("sparse", "dense"):
        m = TorchAMF(20, 30, factors=8, batch_size=32, mode=mode, seed=3)
        u, i, j = m.epoch_triples(X, pu, pi)
        assert not np.asarray(X[u.numpy().copy(), j.numpy().copy()]).any(), "negative is a positive"
        m.run_batches(u, i, j, n_batches=3)
        out.append((m.P.detach().clone(), m.Q.detach().clone()))
    dp = float((out[0][0] - out[1][0]).abs().max())
    dq = float((out[0][1] - out[1][1]).abs().max())
    print(f"sparse vs dense after 3 mini-batches of 32 (rows repeat within a batch): "
          f"max |dP| {dp:.2e}, max |dQ| {dq:.2e}")
    assert dp < 1e-5 and dq < 1e-5, "sparse and dense steps disagree"


def epoch_estimate(X, pu, pi, mode, n_threads, n_batches, seed):
    """Seconds per epoch: median mini-batch time x batches per epoch + one epoch of sampling.

    Times the first ``n_batches`` mini-batches of a fresh model (at most 30 s),
    skipping the first five (allocator warm-up).
    """
    m = TorchAMF(X.shape[0], X.shape[1], factors=64, eps=0.5, reg_adv=1.0,
                 learning_rate=0.05, batch_size=512, mode=mode, n_threads=n_threads, seed=seed)
    t = time.perf_counter()
    u, i, j = m.epoch_triples(X, pu, pi)
    t_sample = time.perf_counter() - t
    per_batch = m.run_batches(u, i, j, n_batches=n_batches, max_seconds=30.0)
    steady = per_batch[min(5, len(per_batch) - 1):]
    n_per_epoch = -(-len(pu) // m.batch_size)
    return float(np.median(steady)) * n_per_epoch + t_sample, len(per_batch)


def _serve():
    """Worker for ``python -m bench.train``: answer one JSON request per stdin line.

    PyTorch runs in its own process so that no other OpenMP runtime (Numba's,
    implicit's) shares its cores: in one process the idle workers of those
    runtimes made PyTorch's two-thread steps several times slower than its
    one-thread steps, which would have flattered aprnb.
    """
    import json
    import sys
    from . import common
    X = common.load_gowalla().train
    pu, pi = positives(X)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        sec, n = epoch_estimate(X, pu, pi, req["mode"], req["n_threads"], req["n_batches"],
                                req["seed"])
        print(json.dumps({"epoch": sec, "batches": n}), flush=True)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        _selfcheck()
