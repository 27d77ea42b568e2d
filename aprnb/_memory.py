"""Allocation helpers for the arrays the training kernels read at random.

The epoch kernels read three random embedding rows and a random word of the
negative-sampling filter per triple. With 4 KiB pages every such read can also
miss the TLB (Gowalla's factors alone span about 4,500 pages). Linux backs
2 MiB-aligned stretches of large numpy allocations with transparent huge pages,
but numpy's buffers start anywhere, so the first and last partial 2 MiB of each
array stay on small pages; how much of the tables that is changes from run to
run, and so did the epoch time (by up to 40% on the development machine).
``huge_page_aligned`` copies an array into a buffer that starts on a 2 MiB
boundary, so that all of it can be backed by huge pages.
"""
import numpy as np

#: Size and alignment of an x86-64 transparent huge page.
HUGE_PAGE = 2 << 20


def huge_page_zeros(shape, dtype):
    """A zero-filled C-contiguous array of ``shape`` that starts on a 2 MiB boundary.

    What :func:`huge_page_aligned` returns, without a source to copy: the
    buffer comes zeroed from the allocator, so filling it costs no extra pass.
    Arrays smaller than one huge page are plain ``np.zeros``.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < HUGE_PAGE:
        return np.zeros(shape, dtype=dtype)
    buf = np.zeros(nbytes + HUGE_PAGE, dtype=np.uint8)
    off = (-buf.ctypes.data) % HUGE_PAGE
    return buf[off:off + nbytes].view(dtype).reshape(shape)


def on_huge_pages(a):
    """True when ``a`` is C-contiguous and starts on a 2 MiB boundary (or is smaller than
    one huge page): what :func:`huge_page_aligned` would return a copy of."""
    return a.flags.c_contiguous and (a.nbytes < HUGE_PAGE or a.ctypes.data % HUGE_PAGE == 0)


def huge_page_aligned(a):
    """A C-contiguous copy of ``a`` that starts on a 2 MiB boundary.

    Arrays smaller than one huge page are returned as a plain C-contiguous
    copy. The result is a view into a slightly larger (by < 2 MiB) buffer; it
    behaves like any other array (``.base`` is the buffer).
    """
    a = np.asarray(a)
    if a.nbytes < HUGE_PAGE:
        return np.array(a, order="C", copy=True)
    out = huge_page_zeros(a.shape, a.dtype)
    out[...] = a
    return out
