"""A tiny counter-based random number generator for the kernels.

Each stream is one ``uint64`` word of a state array, advanced with SplitMix64
(Steele, Lea and Flood, 2014): add a Weyl constant, then mix the bits. It
passes BigCrush and costs a handful of integer instructions, and one word per
stream makes the streams easy to seed from ``random_state`` and to pass into
``prange`` loops (each chunk only touches its own block of words, so there are
no races).
"""
import numpy as np

from ._jit import integer

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@integer(inline=True)
def mix64(z):
    """SplitMix64's output function: a bijective scramble of the 64 bits of ``z``."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@integer(inline=True)
def next_u64(state, t):
    """Advance stream ``t`` of ``state`` and return 64 random bits."""
    z = state[t] + _GAMMA
    state[t] = z
    return mix64(z)


@integer(inline=True)
def randint(state, t, n):
    """Uniform integer in ``[0, n)`` for ``0 < n < 2**32`` (multiply-shift).

    The bias is at most ``n / 2**32``, far below anything a recommender sees.
    """
    hi = next_u64(state, t) >> _S32
    return np.int64((hi * np.uint64(n)) >> _S32)


@integer(inline=True)
def uniform(state, t):
    """Uniform float64 in ``[0, 1)`` with 53 random bits."""
    return np.float64(next_u64(state, t) >> _S11) * _INV53


@integer(inline=True)
def shuffle_range(a, b, lo, hi, state, t):
    """Fisher-Yates shuffle of the pairs ``(a[k], b[k])``, ``lo <= k < hi``, in place."""
    for k in range(hi - 1, lo, -1):
        r = lo + randint(state, t, k - lo + 1)
        ta = a[k]
        a[k] = a[r]
        a[r] = ta
        tb = b[k]
        b[k] = b[r]
        b[r] = tb


@integer
def shuffle_pairs(a, b, state, t):
    """Fisher-Yates shuffle of all the pairs ``(a[k], b[k])`` in place (stream ``t``).

    The epoch kernels read the training pairs in storage order; shuffling the
    pairs themselves (rather than an index array) makes those reads sequential.
    """
    shuffle_range(a, b, 0, a.shape[0], state, t)


#: Each chunk of an epoch owns a block of STRIDE words (one cache line), so
#: threads advancing their own streams never write to a shared cache line.
STRIDE = 8
#: Streams inside a chunk's block: the first negative draw of every triple, the
#: redraws of the rejection sampler, and the random-noise perturbations. Each is
#: consumed in triple order, so the kernels' draws do not depend on how far
#: ahead they draw (see :mod:`aprnb.kernels.sampling`).
DRAW = 0
REDRAW = 1
NOISE = 2
STREAMS_PER_CHUNK = 3


def seed_states(rng, n_chunks):
    """State array for ``n_chunks`` chunks drawn from a numpy Generator.

    Chunk ``t`` owns the words ``t * STRIDE + DRAW / REDRAW / NOISE``; pass
    ``rs = t * STRIDE`` to the kernels.
    """
    # start the array on a 64-byte boundary, so that each block is one cache line
    raw = np.zeros(n_chunks * STRIDE + STRIDE, dtype=np.uint64)
    off = (-raw.ctypes.data % 64) // raw.itemsize
    states = raw[off:off + n_chunks * STRIDE]
    seeds = rng.integers(0, np.iinfo(np.uint64).max, size=(n_chunks, STREAMS_PER_CHUNK),
                         dtype=np.uint64, endpoint=True)
    for k in range(STREAMS_PER_CHUNK):
        states[k::STRIDE] = seeds[:, k]
    return states
