"""The containers the loaders return: :class:`Dataset` and :class:`Interactions`."""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp


@dataclass
class Dataset:
    """A train/test pair over one user and item index.

    Attributes
    ----------
    train, test : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Binary interaction matrices (``test`` may be None).
    negatives : ndarray of int, shape (n_users, n_neg), optional
        Sampled-protocol negatives per user (-1 padding for users without).
    user_ids, item_ids : ndarray
        Original id of each contiguous index.
    name : str
    split : dict, optional
        How the data was opened and split (the keyword arguments of
        :func:`aprnb.data.open_dataset`); None for data built by hand.
    """
    train: sp.csr_matrix
    test: Optional[sp.csr_matrix] = None
    negatives: Optional[np.ndarray] = None
    user_ids: Optional[np.ndarray] = None
    item_ids: Optional[np.ndarray] = None
    name: str = ""
    interactions: Optional["Interactions"] = field(default=None, repr=False)
    split: Optional[dict] = field(default=None, repr=False)

    @property
    def n_users(self):
        return self.train.shape[0]

    @property
    def n_items(self):
        return self.train.shape[1]

    def __repr__(self):
        t = self.test.nnz if self.test is not None else 0
        return (f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
                f"{self.train.nnz} train / {t} test interactions)")


@dataclass
class Interactions:
    """Interaction log with contiguous indices and the mapping back to original ids."""
    users: np.ndarray
    items: np.ndarray
    values: Optional[np.ndarray]
    timestamps: Optional[np.ndarray]
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)

    def __len__(self):
        return len(self.users)

    def to_csr(self):
        """Binary CSR matrix of shape (n_users, n_items); duplicates merged."""
        return _binary_csr(self.users, self.items, (self.n_users, self.n_items))


def _binary_csr(users, items, shape):
    M = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    M.sum_duplicates()
    M.data[:] = 1.0
    M.indices = M.indices.astype(np.int32)
    M.indptr = M.indptr.astype(np.int32)
    return M
