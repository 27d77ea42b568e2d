"""Numba kernels: per-triple steps, epoch loops, sampling, top-K and attacks.

Kernels take arrays and scalars only; the model classes in :mod:`aprnb.models`
validate, allocate, seed and loop over epochs.
"""
from . import _jit  # noqa: F401  (first: drops a stale compile cache)
from ._math import sigmoid, softplus
from .apr import apr_step, apr_step_adagrad, apr_step_given
from .bpr import bpr_step, bpr_step_adagrad
from .epoch import (MODE_APR, MODE_APR_RANDOM, MODE_BPR, MODE_VAT, all_finite, epoch_parallel,
                    epoch_serial)
from .sampling import sample_negative, sample_negatives

__all__ = [
    "sigmoid", "softplus", "bpr_step", "bpr_step_adagrad", "apr_step", "apr_step_adagrad",
    "apr_step_given", "epoch_serial", "epoch_parallel", "all_finite", "sample_negative",
    "sample_negatives", "MODE_BPR", "MODE_APR", "MODE_APR_RANDOM", "MODE_VAT",
]
