"""Text-file plumbing shared by the readers: paths, lines, plain integers, index caps.

Formats whose ids are indices (LightGCN, NCF, Last.fm, delimited with ``one_based``)
read their ids through :func:`_parse_int` and size their index through
:func:`_check_index_size`, so that a few bytes naming one huge id cannot make the
loader allocate gigabytes.
"""
import os
import re


def _check_file(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; pass the path of a file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; check the path (relative paths are "
                                f"resolved from {os.getcwd()})")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not a regular file; pass the path of a file")
    return path


def _check_folder(folder, holding):
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{folder} does not exist; pass the folder holding {holding}")
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: not a directory; pass the folder holding {holding}")
    return folder


def _lines(path):
    """Yield ``(lineno, line)`` of a UTF-8 text file (a BOM is dropped).

    Undecodable bytes raise ``ValueError`` naming the file and the line.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid UTF-8 text ({e.reason} at "
                                 f"byte {e.start}); save the file as UTF-8") from None


def _data_lines(path, comment):
    """``(lineno, stripped line)`` of the non-blank, non-comment lines of a text file."""
    for lineno, line in _lines(path):
        s = line.strip()
        if s and not (comment and s.startswith(comment)):
            yield lineno, s


def _split(line, sep):
    """Fields of one line, stripped of blanks and of one pair of surrounding quotes."""
    toks = [t.strip() for t in (line.split(sep) if sep else line.split())]
    return [t[1:-1].strip() if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t
            for t in toks]


#: Largest id a file may use as an index directly (the index is int32).
MAX_ID = 2**31 - 2
#: An index may be this much larger than the number of ids in the file that
#: defines it, and at least MIN_INDEX, before it is refused as absurd: the ids of
#: a LightGCN, NCF or ``one_based`` file are indices, and an index sized by one
#: huge id would allocate gigabytes for a few bytes of input.
INDEX_SLACK = 16
MIN_INDEX = 2**16


_PLAIN_INT = re.compile(r"-?[0-9]+")


def _plain_int(tok):
    """``int(tok)`` for plain ASCII digits only (``int`` also takes "+5", "1_0", " 5" and
    non-ASCII digits such as "٣"); None for anything else."""
    return int(tok) if _PLAIN_INT.fullmatch(tok) else None


def _parse_int(tok, path, lineno, what):
    v = _plain_int(tok)
    if v is None:
        raise ValueError(f"{path}, line {lineno}: {what} {tok!r} is not an integer (write "
                         f"ids as plain digits 0-9)")
    if v < 0:
        raise ValueError(f"{path}, line {lineno}: {what} {v} is negative; ids must be >= 0")
    if v > MAX_ID:
        raise ValueError(f"{path}, line {lineno}: {what} {v} is beyond {MAX_ID}, the largest "
                         f"index aprnb accepts; ids in this format are indices (0, 1, 2, ...)")
    return v


class _Largest:
    """The largest id seen, and where: for :func:`_check_index_size`."""

    def __init__(self):
        self.value, self.where = -1, None

    def update(self, values, path, lineno):
        m = max(values, default=-1)
        if m > self.value:
            self.value, self.where = m, (path, lineno)


def _check_index_size(largest, n_ids, what):
    """Refuse an index of ``largest.value + 1`` entries that ``n_ids`` ids in the files
    cannot justify (more than ``max(MIN_INDEX, INDEX_SLACK * n_ids)``), naming the file
    and line of the id that asks for it, before anything of that size is allocated."""
    limit = max(MIN_INDEX, INDEX_SLACK * n_ids)
    if largest.value + 1 > limit:
        path, lineno = largest.where
        raise ValueError(f"{path}, line {lineno}: {what} {largest.value} would make an index "
                         f"of {largest.value + 1} {what}s for {n_ids} ids in the data "
                         f"(at most {limit} are accepted); ids in this format are indices "
                         f"0, 1, 2, ...: renumber them, or read the file as delimited data "
                         f"with mapped ids (format='delimited', one_based=None)")


def _int_index(n, offset=0):
    """Raw-token -> index lookup for integer ids ``offset .. offset + n - 1`` (None if
    unknown)."""
    def index(tok):
        v = _plain_int(tok)
        if v is None:
            return None
        v -= offset
        return v if 0 <= v < n else None
    return index
