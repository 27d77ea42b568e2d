"""The fast path of the delimited reader: numpy's C ``np.loadtxt`` on a file's body.

:mod:`aprnb.data.delimited` reads the first lines of a file itself (comments, the
header, the separator, the number of fields); :func:`read_body` then hands the rest
of the file to ``np.loadtxt`` -- but only after a byte scan has shown that
``np.loadtxt`` reads it exactly as the careful parser would. Otherwise it returns
None and the careful parser reads the file (and reports the file and line of any
error). The scan accepts:

* bytes ``0-9``, ``-``, the separator, ``\\n`` and ``\\r\\n`` (and ``.``, ``e``, ``E``,
  ``+`` when there are value or timestamp fields): no quotes, comments, letters,
  stray blanks, a lone ``\\r`` (a line break to ``np.loadtxt``, not to the careful
  parser) or anything non-ASCII;
* user and item ids in the canonical spelling of an int64, which the careful parser
  sorts as numbers: no ``+7``, ``007`` or ``-0`` (``np.loadtxt`` would read them as
  7, 7 and 0, where the careful parser keeps them as distinct strings), no ``.``,
  ``e`` or ``+`` (numpy < 2 reads "7.0" or "1e3" as an integer, with a
  DeprecationWarning) and within int64 (numpy < 2 turns an overflow into garbage);
* value and timestamp fields that are plain integers are read as int64 and
  converted (int -> float64 rounds as ``float(str)`` does), unless one is
  ``-0...`` (``-0.0`` to ``float``) or beyond int64; otherwise they are
  read as float64, which ``np.loadtxt`` parses with the same routine as ``float``.

A line with the wrong number of fields, an empty field or an unparsable number makes
``np.loadtxt`` raise, which is also a "no": the careful parser then names the line.
Memory: the scan holds one chunk (8 MiB, or the longest line) at a time.
"""
import numpy as np

#: Bytes of one scan chunk (whole lines are scanned; a longer line makes a larger one).
CHUNK = 1 << 23
#: Single-character separators the fast path reads (None: blanks and tabs).
SEPARATORS = ("\t", ",", ";", "|", ":", " ")
#: A field of this many digits may overflow int64 (at most 9223372036854775807).
LONG = 19
_DIGITS_MINUS = b"0123456789-"
_FLOAT_ONLY = b".eE+"
_ZERO, _MINUS, _PLUS = ord("0"), ord("-"), ord("+")
#: The digits of the largest int64 and of minus the smallest.
_INT64_DIGITS = (np.frombuffer(str(2**63 - 1).encode(), np.uint8).astype(np.int16) - _ZERO,
                 np.frombuffer(str(2**63).encode(), np.uint8).astype(np.int16) - _ZERO)
#: Padding after a chunk: a token start plus LONG + 1 stays inside the buffer.
_PAD = b"\n" * (LONG + 3)


def fast_separator(sep):
    """Whether the fast path reads files separated by ``sep`` (a resolved separator)."""
    return sep is None or sep in SEPARATORS


def allowed_bytes(sep, n_fields):
    """The bytes a body with ``n_fields`` fields separated by ``sep`` may hold."""
    seps = b" \t" if sep is None else sep.encode("ascii")
    return _DIGITS_MINUS + b"\r\n" + seps + (_FLOAT_ONLY if n_fields >= 3 else b"")


class _Scan:
    """What the byte scan found: rows, and whether values must be read as floats."""

    def __init__(self):
        self.rows = 0
        self.floats = False      # a value/timestamp field holds ".", "e", "E" or "+"
        self.not_int = False     # ... or is "-0..." or beyond int64: read as float64


def _beyond_int64(a, boundary, starts):
    """Which of the integer tokens beginning at ``starts`` lie outside int64: more than
    LONG digits, or LONG digits above those of the int64 limit (an optional "-" first)."""
    neg = a[starts] == _MINUS
    window = (starts + neg)[:, None] + np.arange(LONG + 1)
    token = ~boundary[window]
    at_least = token[:, :LONG].all(axis=1)
    over = at_least & token[:, LONG]                  # LONG + 1 digits or more
    exact = np.flatnonzero(at_least & ~over)          # LONG digits: compare with the limit
    if exact.size:
        digits = a[window[exact, :LONG]].astype(np.int16) - _ZERO
        limit = np.where(neg[exact, None], _INT64_DIGITS[1], _INT64_DIGITS[0])
        diff = digits - limit
        first = (diff != 0).argmax(axis=1)            # the first digit that differs
        over[exact] = diff[np.arange(exact.size), first] > 0
    return over


def _scan_chunk(data, sep, k, scan):
    """Scan whole lines ``data`` (bytes) of a body with ``k`` fields; False means "no"."""
    if data.translate(None, allowed_bytes(sep, k)):
        return False                                   # a byte outside the accepted set
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return False                                   # a lone CR: a line break to loadtxt
    floats = k >= 3 and any(c in data for c in (b".", b"e", b"E", b"+"))
    a = np.frombuffer(b"\n" + data + _PAD, dtype=np.uint8)
    boundary = a < _PLUS                               # \t \n \r and blank: below "+"
    if sep is not None and sep not in "\t ":
        boundary |= a == ord(sep)
    # token starts: a token byte after a boundary byte
    starts = np.flatnonzero(np.greater(boundary[:-1], boundary[1:])) + 1
    if starts.size % k:
        return False
    if not starts.size:
        return True                                    # blank lines only
    S = starts.reshape(-1, k)
    room = np.diff(starts, append=a.size).reshape(-1, k) - 1   # >= the token's length

    ids = starts if k == 2 else S[:, :2]
    # the token bytes up to "0" are "+", "-", "." and "0": only such ids need a look
    odd = ids[a[ids] <= _ZERO]
    if odd.size:
        c0, c1 = a[odd], a[odd + 1]
        if ((c0 == _PLUS) | ((c0 == _ZERO) & (c1 - np.uint8(_ZERO) < 10))
                | ((c0 == _MINUS) & (c1 == _ZERO))).any():
            return False                               # +7, 007, -0, -07: not canonical
    long_ids = starts[room.ravel() >= LONG] if k == 2 else ids[room[:, :2] >= LONG]
    if long_ids.size and _beyond_int64(a, boundary, long_ids).any():
        return False                                   # numpy < 2 reads garbage
    if floats:
        # no ".", "e", "E", "+" between a line's first token and its third
        step = np.zeros(a.size + 1, dtype=np.int8)
        step[S[:, 0]] = 1
        step[S[:, 2]] = -1
        in_ids = np.cumsum(step[:-1], dtype=np.int8).view(np.bool_)
        special = (a == ord(".")) | (a == _PLUS) | ((a | 0x20) == ord("e"))
        if (in_ids & special).any():
            return False
        scan.floats = True
    if k >= 3 and not scan.not_int:
        vals = S[:, 2:]
        if ((a[vals] == _MINUS) & (a[vals + 1] == _ZERO)).any():
            scan.not_int = True                        # "-0" is -0.0 to float(), 0 to int
        else:
            long_vals = vals[room[:, 2:] >= LONG]
            if long_vals.size and _beyond_int64(a, boundary, long_vals).any():
                scan.not_int = True
    scan.rows += S.shape[0]
    return True


def _scan(path, offset, sep, k):
    """Byte scan of ``path`` from ``offset`` on (whole lines at a time): a :class:`_Scan`,
    or None when ``np.loadtxt`` might read the body otherwise than the careful parser."""
    scan = _Scan()
    with open(path, "rb") as fh:
        fh.seek(offset)
        carry = b""
        while True:
            block = fh.read(CHUNK)
            if block:
                data = carry + block
                cut = data.rfind(b"\n") + 1
                if not cut:                  # no line end yet: read on
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                data, carry = carry, b""
            if data and not _scan_chunk(data, sep, k, scan):
                return None
            if not block:
                return scan


def read_body(path, offset, lineno, sep, k):
    """The fields of the body of ``path`` (from byte ``offset``, which is line ``lineno``),
    read by ``np.loadtxt``, or None when the careful parser must read it.

    Returns ``(users, items, values, timestamps)``: int64 ids, float64 values and
    timestamps (None when the file has no such field).
    """
    if not fast_separator(sep) or not 2 <= k <= 4:
        return None
    scan = _scan(path, offset, sep, k)
    if scan is None or not scan.rows:
        return None
    as_float = scan.floats or scan.not_int
    if as_float:
        dtype = np.dtype([("u", "<i8"), ("i", "<i8"), ("v", "<f8"), ("t", "<f8")][:k])
    else:
        dtype = np.dtype(np.int64)
    try:
        arr = np.loadtxt(path, dtype=dtype, delimiter=sep, comments=None, skiprows=lineno - 1,
                         ndmin=1 if as_float else 2, encoding="utf-8-sig")
    except (ValueError, OverflowError, UnicodeError):
        return None
    if len(arr) != scan.rows:
        return None
    if as_float:
        cols = [arr[name] for name in dtype.names]
    else:
        if arr.shape[1] != k:
            return None
        cols = [arr[:, j] for j in range(k)]
        cols[2:] = [c.astype(np.float64) for c in cols[2:]]
    cols += [None] * (4 - k)
    return tuple(cols)
