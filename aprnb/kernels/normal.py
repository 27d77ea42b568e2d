r"""Normal random numbers for large factor tables: a ziggurat on SplitMix64 streams.

``fit`` draws its initial factors with numpy up to a few million numbers (so
every published seeded result keeps its exact start). A million users and a
million items at 64 factors need 128M numbers; numpy's generator makes them
on one thread per stream at about 14 ns each on the development machine, which
alone took longer than the rest of the fit's set-up. :func:`fill_normal` makes
them on all of Numba's threads, in blocks that each own a stream, so the
numbers depend on the seed and the table's size, never on the thread count.

The method is Marsaglia and Tsang's ziggurat (2000). Cover the right half of
the bell :math:`f(x) = e^{-x^2/2}` with ``N`` horizontal strips of equal area
``v``: strip ``i >= 1`` is the rectangle :math:`[0, x_i] \times [f(x_i), f(x_{i+1})]`,
with :math:`x_1 = r > x_2 > \dots > x_N = 0`, and strip 0 is the base
:math:`[0, r] \times [0, f(r)]` together with the tail beyond ``r``, whose area
is also ``v``; it is drawn as a rectangle of width :math:`x_0 = v / f(r)`.
Equal areas give :math:`x_{i+1} = f^{-1}(f(x_i) + v / x_i)`, and ``r`` is the
one value for which this recursion ends exactly at the top,
:math:`x_{N-1}(1 - f(x_{N-1})) = v` (:func:`base_radius` solves it by
bisection). One draw:

1. pick a strip ``i`` uniformly (it has area ``v`` like all the others) and a
   point ``x = u x_i`` uniformly along it;
2. if :math:`x < x_{i+1}` the point is under the curve whatever its height:
   accept (about 99% of draws end here, after one 64-bit random word);
3. in strip 0 beyond ``r``: draw from the tail by Marsaglia's method
   (:math:`a = -\ln u_1 / r`, :math:`b = -\ln u_2` until :math:`2b > a^2`;
   return :math:`r + a`);
4. otherwise pick the height :math:`y` uniformly in the strip and accept
   ``x`` if :math:`y < f(x)`; if not, start again.

Each step accepts a point uniform under the curve, so ``x`` has the half-normal
law, and a random sign makes it standard normal.

Random bits: each SplitMix64 word (:mod:`aprnb.kernels._rng`) gives two
candidates of 32 bits: 8 for the strip, 1 for the sign and 23 for the position
``u`` (as numpy's float32 ziggurat does). The slow steps take 53-bit uniforms
from the same stream. A float64 table therefore holds numbers whose position
along the strip has float32 resolution (``2**-23``), which is ample for random
initial factors; float32 and float64 tables of one key hold the same numbers up
to the final rounding.
"""
import math

import numpy as np
from numba import prange

from ._jit import inline, kernel
from ._rng import _GAMMA, mix64

#: Strips of the ziggurat (a power of two: the strip is 8 bits of the random word).
LAYERS = 256

_S8 = np.uint64(8)
_S9 = np.uint64(9)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV23 = 1.0 / 8388608.0  # 2**-23
_ONE = np.uint64(1)
_LOW8 = np.uint64(LAYERS - 1)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


def _strip_top(r, n=LAYERS):
    """``x_{N-1} (1 - f(x_{N-1})) - v`` for a base ``r``: zero at the right ``r``."""
    f = lambda x: math.exp(-0.5 * x * x)   # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = r
    for _ in range(n - 2):
        y = f(x) + v / x
        if y >= 1.0:                # the strips reach the top too early: r too small
            return -1.0
        x = math.sqrt(-2.0 * math.log(y))
    return x * (1.0 - f(x)) - v


def base_radius(n=LAYERS):
    """The base ``r`` of an ``n``-strip ziggurat: the root of :func:`_strip_top`, by
    bisection (for 256 strips 3.6541..., Marsaglia and Tsang's value; stored as
    :data:`R256`, which ``tests/test_normal.py`` checks against this function)."""
    lo, hi = 2.0, 5.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _strip_top(mid, n) < 0:
            lo = mid
        else:
            hi = mid
    return hi


#: :func:`base_radius` of 256 strips (stored: the bisection takes about 20 ms).
R256 = 3.6541528853610092


def ziggurat_tables(n=LAYERS, r=None):
    """``(x, fx)``: strip edges ``x[0..n]`` (``x[n] = 0``) and ``f(x)`` for ``n`` strips.

    ``x[0] = v / f(r)`` is the base strip's width, ``x[1] = r``, the base
    (:data:`R256` for 256 strips, else :func:`base_radius`).
    """
    if r is None:
        r = R256 if n == 256 else base_radius(n)
    f = lambda t: math.exp(-0.5 * t * t)   # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = np.zeros(n + 1)
    x[0], x[1] = v / f(r), r
    for i in range(1, n - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(f(x[i]) + v / x[i]))
    x[n] = 0.0
    return x, np.exp(-0.5 * x * x)


_X, _FX = ziggurat_tables()


@inline
def _uniform(s):
    """``(u, s)``: a uniform float64 in ``[0, 1)`` from the stream at state ``s``, advanced."""
    s = s + _GAMMA
    return np.float64(np.int64(mix64(s) >> _S11)) * _INV53, s


@inline
def _candidate(c, s, x, fx):
    """``(accepted, z, s)`` for the 32 random bits ``c`` (strip, sign, 23-bit position).

    The rare slow steps (tail, wedge) take fresh uniforms from the stream at
    ``s`` and return it advanced; a point rejected in a wedge gives
    ``accepted = False`` (the caller moves on to the next 32 bits).
    """
    i = np.int64(c & _LOW8)
    z = np.float64(np.int64(c >> _S9)) * _INV23 * x[i]
    if z >= x[i + 1]:
        if i == 0:                                      # the tail beyond r
            while True:
                u1, s = _uniform(s)
                u2, s = _uniform(s)
                a = -math.log(1.0 - u1) / x[1]
                if -2.0 * math.log(1.0 - u2) > a * a:
                    z = x[1] + a
                    break
        else:                                           # the wedge: test the height
            u, s = _uniform(s)
            if fx[i] + u * (fx[i + 1] - fx[i]) >= math.exp(-0.5 * z * z):
                return False, 0.0, s
    return True, z * (1.0 - 2.0 * np.float64(np.int64((c >> _S8) & _ONE))), s


@kernel(parallel=True, nogil=True)
def _fill_blocks(out, key, block, scale, x, fx):
    n = out.shape[0]
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        s = mix64(key ^ mix64(np.uint64(b + 1)))
        k, hi = b * block, min(n, (b + 1) * block)
        while k < hi:
            s = s + _GAMMA
            w = mix64(s)
            ok, z, s = _candidate(w & _LOW32, s, x, fx)
            if ok:
                out[k] = z * scale
                k += 1
            ok, z, s = _candidate(w >> _S32, s, x, fx)
            if ok and k < hi:
                out[k] = z * scale
                k += 1


def fill_normal(out, key, scale=1.0, block=1 << 16):
    """Fill the contiguous array ``out`` with ``N(0, scale^2)`` numbers, in place.

    Parameters
    ----------
    out : ndarray of float32 or float64, C-contiguous
        Filled in row-major order, ``block`` numbers per stream.
    key : int
        64-bit seed; block ``b`` runs the SplitMix64 stream that starts at
        ``mix64(key ^ mix64(b + 1))``.
    scale : float
        Standard deviation (each number is computed in float64, then cast).
    block : int
        Numbers per stream (and per task of the parallel loop).

    The result depends on ``key``, ``scale``, ``block`` and ``out.size`` only:
    the same on any number of threads.
    """
    if not out.flags.c_contiguous:
        raise ValueError("fill_normal needs a C-contiguous array")
    _fill_blocks(out.reshape(-1), np.uint64(key), np.int64(block), float(scale), _X, _FX)
    return out
