"""The one place where the benchmarks touch aprnb internals (diagnostics only).

Everything else in ``bench/`` uses the public API: ``aprnb.*`` (BPR, APR, ItemPop,
evaluate, load, perturb, robustness, data, datasets), the public names of
``aprnb.data`` and the names in ``aprnb.kernels.__all__``.

A few diagnostics need to look inside the library. Each internal they touch is
listed in :data:`INTERNALS` with the reason, and is reached only through
:func:`internal`, which returns None and prints one ``[bench] skip`` line when the
name has moved or been renamed. The callers then leave their row or section out,
so a refactor of aprnb's private code never breaks ``python -m bench.run_all``.
"""
import contextlib
import sys
import time

import numpy as np

#: (module, name) -> why bench needs it
INTERNALS = {
    ("aprnb.evaluation._engine", "TILE_ROWS"):
        "evaluate.py tile sweep and notes: the default users per block of score tiles",
    ("aprnb.evaluation._engine", "TILE_BYTES"):
        "evaluate.py tile sweep: set temporarily to time other score-tile sizes "
        "(the public block_size sets the users per block, not the tile bytes)",
    ("aprnb.evaluation._engine", "tile_buffers"):
        "evaluate.py profile: the block size and score buffer evaluate would use",
    ("aprnb.kernels.topk", "push_tile"):
        "evaluate.py profile: the exclusion + selection kernel, timed apart from BLAS",
    ("aprnb.kernels.topk", "holdout_finish"):
        "evaluate.py profile: the per-block metrics kernel, timed apart from BLAS",
    ("aprnb._validation", "check_interactions"):
        "scaling.py set-up steps: validation and the canonical CSR copy",
    ("aprnb.models._training", "positives"):
        "scaling.py set-up steps: the (user, item) arrays the epochs shuffle",
    ("aprnb.models._training", "sampling_filter"):
        "scaling.py set-up steps: the negative-sampling filter",
    ("aprnb.models._factor", "normal_factors"):
        "scaling.py set-up steps: the initial factors",
    ("aprnb._provenance", "fingerprint"):
        "scaling.py set-up steps: the training matrix's fingerprint",
}

_SKIPPED = set()


def skip(what, why):
    """Print one skip line per diagnostic (to stderr)."""
    if what not in _SKIPPED:
        _SKIPPED.add(what)
        print(f"[bench] skip {what}: {why} (aprnb internals moved; see bench/_hooks.py)",
              file=sys.stderr, flush=True)


def internal(module, name, what):
    """``module.name`` if it still exists, else None after a skip line for ``what``."""
    if (module, name) not in INTERNALS:
        raise KeyError(f"{module}.{name} is not declared in bench/_hooks.py INTERNALS")
    try:
        import importlib
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        skip(what, f"{module}.{name} not found ({exc})")
        return None


def tile_defaults():
    """``(users per block, MB per score tile)`` of evaluate's holdout loop, or None."""
    rows = internal("aprnb.evaluation._engine", "TILE_ROWS", "evaluation tile sweep")
    size = internal("aprnb.evaluation._engine", "TILE_BYTES", "evaluation tile sweep")
    if rows is None or size is None:
        return None
    return int(rows), int(size) >> 20


@contextlib.contextmanager
def tile_bytes(mb):
    """Set evaluate's score-tile size to ``mb`` MB for the body, then restore it."""
    import aprnb.evaluation._engine as ev
    old = ev.TILE_BYTES
    ev.TILE_BYTES = int(mb) << 20
    try:
        yield
    finally:
        ev.TILE_BYTES = old


def _profile_pieces():
    names = [("aprnb.evaluation._engine", "tile_buffers"), ("aprnb.kernels.topk", "push_tile"),
             ("aprnb.kernels.topk", "holdout_finish")]
    pieces = [internal(m, n, "evaluation profile") for m, n in names]
    return None if any(p is None for p in pieces) else pieces


def _profile_block(P, Q, b, k, buf, ex, te, ks, push_tile, holdout_finish):
    """One block of users: ``(BLAS seconds, kernel seconds)``."""
    n = len(b)
    Pb = P[b]
    hs = np.full((n, k), -np.inf, dtype=P.dtype)
    hi = np.full((n, k), -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    ex_pos = ex[0][b].copy()
    cols = buf.size // n
    t_mm = t_sel = 0.0
    for c in range(0, Q.shape[0], cols):
        c2 = min(Q.shape[0], c + cols)
        S = buf[:n * (c2 - c)].reshape(n, c2 - c)
        t0 = time.perf_counter()
        np.matmul(Pb, Q[c:c2].T, out=S)
        t1 = time.perf_counter()
        push_tile(S, b, c, ex[0], ex[1], ex_pos, k, hs, hi, sizes)
        t_sel += time.perf_counter() - t1
        t_mm += t1 - t0
    t1 = time.perf_counter()
    holdout_finish(b, hs, hi, sizes, te[0], te[1], ks, np.zeros((n, 1, 4)))
    return t_mm, t_sel + time.perf_counter() - t1


def evaluation_profile(P, Q, X, T, k=20):
    """Replay evaluate's tiled holdout loop on one thread: ``(BLAS s, kernels s)`` or None.

    None (after a skip line) when the internals moved or changed their arguments.
    """
    pieces = _profile_pieces()
    if pieces is None:
        return None
    tile_buffers, push_tile, holdout_finish = pieces
    users = np.flatnonzero(np.diff(T.indptr) > 0)
    ex = (X.indptr.astype(np.int64), X.indices.astype(np.int64))
    te = (T.indptr.astype(np.int64), T.indices.astype(np.int64))
    ks = np.asarray([k], dtype=np.int64)
    try:
        rows, bufs = tile_buffers(Q.shape[0], P.dtype, None, len(users), 1)
        t_mm = t_sel = 0.0
        for lo in range(0, len(users), rows):
            mm, sel = _profile_block(P, Q, users[lo:lo + rows], k, bufs[0], ex, te, ks,
                                     push_tile, holdout_finish)
            t_mm += mm
            t_sel += sel
    except Exception as exc:   # signatures changed (TypeError, Numba typing errors, ...)
        skip("evaluation profile", f"internal call failed: {type(exc).__name__}: {exc}")
        return None
    return t_mm, t_sel
