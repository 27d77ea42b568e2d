r"""The NeuMF scorer: logits of (user, item) pairs for ranking (the scorer protocol).

Per scorer, the item side is computed once: :math:`q^G_i` and
:math:`c_i = W_{1i} q^M_i + b_1`; per block of users, the user side
:math:`h^G\odot p^G_u` and :math:`a_u = W_{1u} p^M_u`. A tile's GMF part is then
one matrix product ``(h^G * p^G) @ q^G.T`` (BLAS), and its MLP part runs
:func:`aprnb.kernels.neumf.mlp_tile` from :math:`\mathrm{relu}(a_u + c_i)` on.
"""
import numpy as np

from ..kernels.neumf import PAIR_BLOCK, mlp_pairs, mlp_tile
from ..reference.neumf import unpack


class NeuMFScorer:
    """Scores (logits) of a NeuMF: ``n_users``, ``n_items``, ``dtype``, ``rows``,
    ``tile``, ``pairs``, ``subset``.

    Parameters
    ----------
    P, Q : ndarray
        User rows ``[p^G | p^M]`` and item rows ``[q^G | q^M]``.
    theta : ndarray
        The flat dense vector.
    factors : int
    layers : tuple of int
    """

    def __init__(self, P, Q, theta, factors, layers, _items=None):
        self._P = P
        self.n_users, self.n_items = P.shape[0], Q.shape[0]
        self.dtype = P.dtype
        F, H = factors, layers[0] // 2
        self._F, self._H = F, H
        Ws, bs, h, b0 = unpack(theta, factors, layers)
        self._hG = np.ascontiguousarray(h[:F])
        self._hM = np.ascontiguousarray(h[F:])
        self._b0 = float(b0)
        self._W1u = np.ascontiguousarray(Ws[0][:, :H])
        self._dims = np.asarray(layers, dtype=np.int64)
        # later layers transposed (W_l^T row-major, then b_l): see mlp_tile
        parts, offs, pos = [], [], 0
        for W, b in zip(Ws[1:], bs[1:]):
            offs += [pos, pos + W.size]
            parts += [W.T.ravel(), b]
            pos += W.size + b.size
        self._WT = np.ascontiguousarray(np.concatenate(parts) if parts else
                                        np.zeros(1), dtype=P.dtype)
        self._offs_t = np.asarray(offs + [0], dtype=np.int64)
        if _items is None:
            _items = (np.ascontiguousarray(Q[:, :F]),
                      np.ascontiguousarray(Q[:, F:] @ Ws[0][:, H:].T + bs[0], dtype=P.dtype))
        self._QG, self._C = _items

    def rows(self, users):
        """``(h^G * p^G_u, W_1u p^M_u)`` of the int64 user indices ``users``."""
        Pu = self._P[users]
        GU = np.ascontiguousarray(Pu[:, :self._F] * self._hG)
        A = np.ascontiguousarray(Pu[:, self._F:] @ self._W1u.T, dtype=self.dtype)
        return GU, A

    def _buf(self):
        return np.empty((3 * int(self._dims.max()) + 1, PAIR_BLOCK), dtype=self.dtype)

    def tile(self, rows, items, out):
        """Fill ``out`` (len(users), n) with the logits of the rows' users against
        ``items`` (a slice or an int64 array of item indices)."""
        GU, A = rows
        if isinstance(items, slice):
            idx = np.arange(self.n_items, dtype=np.int64)[items]
            QG = self._QG[items]
        else:
            idx = np.asarray(items, dtype=np.int64)
            QG = self._QG[idx]
        np.matmul(GU, QG.T, out=out)
        mlp_tile(A, self._C, idx, self._WT, self._dims, self._offs_t, self._hM,
                 self.dtype.type(self._b0), self._buf(), out)
        return out

    def pairs(self, users, items):
        """1-D logits of the pairs ``(users[k], items[k])``."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        GU, A = self.rows(users)
        out = np.einsum("rf,rf->r", GU, self._QG[items]).astype(self.dtype)
        mlp_pairs(A, self._C, items, self._WT, self._dims, self._offs_t, self._hM,
                  self.dtype.type(self._b0), self._buf(), out)
        return out

    def subset(self, users):
        """A scorer of only ``users``, renumbered ``0..len(users)-1`` (item side shared)."""
        new = object.__new__(NeuMFScorer)
        new.__dict__.update(self.__dict__)
        new._P = np.ascontiguousarray(self._P[np.asarray(users, dtype=np.int64)])
        new.n_users = new._P.shape[0]
        return new
