"""Row updates shared by the one-triple and mini-batch reference steps (SGD or Adagrad)."""
import numpy as np

from ._math import _vec


def _apply(W, G, r, g, lr):
    """Update row ``r`` of ``W`` (and ``G`` when not None) with full gradient ``g``."""
    if G is None:
        W[r] = W[r] - lr * g
    else:
        G[r] = G[r] + g * g
        W[r] = W[r] - lr * g / np.sqrt(G[r])


def _copies(P, Q, GP, GQ):
    if (GP is None) != (GQ is None):
        raise ValueError("pass both GP and GQ (Adagrad) or neither (SGD)")
    P, Q = _vec(P), _vec(Q)
    if GP is not None:
        GP, GQ = _vec(GP), _vec(GQ)
    return P, Q, GP, GQ


def _triple_step(P, Q, GP, GQ, u, i, j, lr, reg, dp, dqi, dqj):
    p, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
    _apply(P, GP, u, dp + reg * p, lr)
    _apply(Q, GQ, i, dqi + reg * qi, lr)
    _apply(Q, GQ, j, dqj + reg * qj, lr)
