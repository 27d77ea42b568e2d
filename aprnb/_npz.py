"""The ``.npz`` container of model files: an atomic write, and a read that trusts nothing.

This module knows arrays and JSON, not model classes (:mod:`aprnb.io` rebuilds the
models).

Writing: the arrays go to a temporary file in the target folder, which is flushed
to disk and renamed over the target, so a reader never sees half a file. The file
gets the permissions a plain ``open(path, "w")`` would give it: those of the file
it replaces, else ``0o666`` less the umask.

Reading: only the members asked for are read. Before a member is inflated, its
``.npy`` header is parsed and the byte count its shape and dtype declare is
checked against the member's size in the archive, and a compressed member must
not claim to inflate more than :data:`MAX_RATIO` times. So a small file cannot
make the reader allocate much more than its own size (no zip bombs, no forged
shapes), object arrays are refused (nothing is unpickled), and every way in
which an archive can be corrupt ends in one ``ValueError``.
"""
import json
import os
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np

#: The largest inflation a compressed member may claim (``np.savez`` stores
#: members uncompressed; ``np.savez_compressed`` of factor tables compresses ~1.1x).
MAX_RATIO = 64
#: The deepest nesting a JSON member may have.
MAX_JSON_DEPTH = 32

# What a damaged archive, member or header can raise while being read.
_CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError,
            ValueError, NotImplementedError, RuntimeError, KeyError, TypeError, OverflowError,
            struct.error, UnicodeDecodeError, SyntaxError, IndexError, MemoryError)


class CorruptFile(ValueError):
    """An archive or member that cannot be what it claims (a ``ValueError``)."""


def _umask():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)          # the portable way; not thread safe, hence the above first
    os.umask(mask)
    return mask


def _mode_for(path):
    """The permission bits ``open(path, "w")`` would leave ``path`` with; refuses what
    ``open`` would refuse, and targets that are not regular files (a device, a FIFO),
    which a rename would replace instead of writing to."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0o666 & ~_umask()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file; save models to a file path")
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{path}: permission denied (the file is not writable)")
    return stat.S_IMODE(st.st_mode) & 0o777


def write_npz(path, arrays):
    """Write ``arrays`` (name -> array) to ``path`` as an ``.npz``, atomically.

    Raises ``FileNotFoundError`` when the folder does not exist.
    """
    target = os.path.realpath(path)     # a symlink is followed, as open() follows it
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: folder {folder} does not exist; create it first")
    mode = _mode_for(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".aprnb-", suffix=".tmp", dir=folder)
    except PermissionError:
        raise PermissionError(f"{path}: permission denied (cannot create files in "
                              f"{folder})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_member(zf, info, file_size):
    """One ``.npy`` member as an array, after checking that it is what it declares."""
    if info.flag_bits & 0x1:
        raise CorruptFile("encrypted member")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and lzma inflate whole blocks whatever size the directory declares
        raise CorruptFile(f"unsupported compression method {info.compress_type}")
    if info.compress_size > file_size:
        raise CorruptFile("member larger than the file")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise CorruptFile("stored member with two sizes")
    elif info.file_size > MAX_RATIO * info.compress_size + 4096:
        raise CorruptFile(f"member claims to inflate {info.file_size} bytes from "
                          f"{info.compress_size}")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise CorruptFile(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise CorruptFile("object array (aprnb never unpickles)")
        count = 1
        for n in shape:
            count *= int(n)
        nbytes = count * dtype.itemsize
        if fh.tell() + nbytes != info.file_size:
            raise CorruptFile(f"header declares shape {shape} of {dtype} ({nbytes} bytes) "
                              f"but the member holds {info.file_size - fh.tell()}")
        data = fh.read(nbytes)
    if len(data) != nbytes:
        raise CorruptFile("member shorter than declared")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def read_npz(path, names):
    """The members ``names`` (without ``.npy``) of the archive at ``path`` that exist.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming the
    file) for anything that is not a sound ``.npz`` archive.
    """
    bad = (f"{path}: not a readable aprnb model file; it may be truncated, corrupted or not "
           f"written by aprnb (save models with model.save(path))")
    try:
        file_size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            _check_no_overlap(zf.infolist())
            infos = {i.filename: i for i in zf.infolist()}
            return {n: _read_member(zf, infos[n + ".npy"], file_size)
                    for n in names if n + ".npy" in infos}
    except FileNotFoundError:
        raise
    except CorruptFile as e:
        raise ValueError(f"{bad} ({e})") from None
    except _CORRUPT:
        raise ValueError(bad) from None


def _check_no_overlap(infos):
    """Members must not share bytes: overlapping entries would let one compressed block
    be inflated once per member that points at it."""
    spans = sorted((i.header_offset, i.header_offset + 30 + len(i.filename.encode())
                    + i.compress_size) for i in infos)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start < end:
            raise CorruptFile("overlapping members")


def _depth(text):
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (strings skipped)."""
    depth = top = 0
    in_str = escaped = False
    for c in text:
        if in_str:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            top = max(top, depth)
        elif c in "]}":
            depth -= 1
    return top


def read_json(path, array, what):
    """Parse the JSON held in a 0-d string array; ``ValueError`` naming the file when it
    is not a string, too deeply nested, or not JSON."""
    if array.shape != () or array.dtype.kind != "U":
        raise ValueError(f"{path}: corrupted {what} block (not a string)")
    text = str(array)
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{path}: corrupted {what} block (nested deeper than "
                         f"{MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise ValueError(f"{path}: corrupted {what} block ({e})") from None
