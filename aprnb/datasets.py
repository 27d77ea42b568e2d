"""Download, verify and cache public benchmark data sets.

>>> import aprnb.datasets
>>> ds = aprnb.datasets.fetch("movielens-100k")      # doctest: +SKIP
>>> train, test = ds.train, ds.test                   # doctest: +SKIP

Known data sets (see ``docs/datasets.md`` for sources, checksums and terms of use):

=================  ==================================================  =============
name               what                                                default split
=================  ==================================================  =============
``gowalla``        Gowalla check-ins, the NGCF/LightGCN 80/20 split    ``"given"``
``lastfm``         Last.fm hetrec2011, the LightGCN-PyTorch split      ``"given"``
``movielens-100k`` MovieLens 100K ratings (``ml-100k/u.data``)         ``"loo"``
``movielens-1m``   MovieLens 1M ratings (``ml-1m/ratings.dat``)        ``"loo"``
=================  ==================================================  =============

Downloads use `pooch <https://www.fatiando.org/pooch>`_, an optional dependency
(``pip install 'aprnb[datasets]'``). Every file is checked against a checksum in
:data:`REGISTRY` before it enters the cache; a file that fails the check is
deleted, never used. The cache folder is, in order of precedence, the
``data_home`` argument, the ``APRNB_DATA`` environment variable, or
``pooch.os_cache("aprnb")`` (e.g. ``~/.cache/aprnb`` on Linux). Each data set
lives in a sub-folder named after it.
"""
import difflib
import hashlib
import os
import shutil
import urllib.parse
import urllib.request

from . import data

__all__ = ["fetch", "download", "get_data_home", "REGISTRY"]

#: Environment variable that overrides the default cache folder.
ENV_VAR = "APRNB_DATA"

# LightGCN-PyTorch (Jianbai Ye's PyTorch code for the LightGCN paper), pinned to the
# commit whose tree was checked: the files can never change under a pinned URL.
_LIGHTGCN_RAW = ("https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/"
                 "947ca2b3b1d2d3545b114145710cb06c4e57b3d2/data/")
_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"

#: The data sets :func:`fetch` knows. Each entry maps a name to a dict with
#:
#: ``files``
#:     list of ``(url, known_hash, filename)``: where to download from, the
#:     checksum (``"sha256:<hex>"``, ``"md5:<hex>"`` or any other ``alg:<hex>`` that
#:     pooch accepts, or ``"git-sha1:<hex>"``, the Git blob id of the file as listed
#:     in its repository's tree) and the name it gets in the data set's folder;
#: ``unzip``
#:     members to extract from the ``.zip`` files, or None;
#: ``path``
#:     the path, relative to the data set's folder, given to
#:     :func:`aprnb.data.open_dataset` (``"."``: the folder itself);
#: ``format``, ``kwargs``
#:     the ``format=`` and the extra keyword arguments for ``open_dataset``;
#: ``split``
#:     the default ``split=``.
#:
#: Tests and users may add entries (e.g. a mirror with ``file://`` URLs).
REGISTRY = {
    "gowalla": {
        "files": [
            (_LIGHTGCN_RAW + "gowalla/train.txt",
             # Only the Git blob id is known (the file itself could not be obtained to
             # take its SHA-256): the blob listed for data/gowalla/train.txt in
             # LightGCN-PyTorch, and for Data/gowalla/train.txt in kuandeng/LightGCN
             # and the NGCF repository alike.
             "git-sha1:a27782bd7a1d4d0744148dc0460ea94da74763f2", "train.txt"),
            (_LIGHTGCN_RAW + "gowalla/test.txt",
             "sha256:099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
             "test.txt"),
        ],
        "unzip": None,
        "path": ".",
        "format": "lightgcn",
        "kwargs": {},
        "split": "given",
    },
    "lastfm": {
        "files": [
            (_LIGHTGCN_RAW + "lastfm/data1.txt",
             "sha256:c82af3228cbbda2f55a39244de09ed93292894f1d0d9f1908ebb57e27598fded",
             "train.tsv"),
            (_LIGHTGCN_RAW + "lastfm/test1.txt",
             "sha256:de4417c0e6123284ce59a0934bcf5288ec1ec8774a18a1eef453c9952dfa48f9",
             "test.tsv"),
        ],
        "unzip": None,
        "path": ".",
        "format": "lastfm",
        "kwargs": {},
        "split": "given",
    },
    "movielens-100k": {
        "files": [
            (_GROUPLENS + "ml-100k.zip",
             "sha256:50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
             "ml-100k.zip"),
        ],
        "unzip": ["ml-100k/u.data"],
        "path": "ml-100k/u.data",
        "format": "delimited",
        "kwargs": {"sep": "\t", "header": False},
        "split": "loo",
    },
    "movielens-1m": {
        "files": [
            (_GROUPLENS + "ml-1m.zip",
             "sha256:a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
             "ml-1m.zip"),
        ],
        "unzip": ["ml-1m/ratings.dat"],
        "path": "ml-1m/ratings.dat",
        "format": "delimited",
        "kwargs": {"sep": "::", "header": False},
        "split": "loo",
    },
}

_GIT_SHA1 = "git-sha1"


def _import_pooch():
    try:
        # Lazy: pooch is an optional extra, needed only to download.
        import pooch
    except ImportError:
        raise ImportError("aprnb.datasets needs the optional dependency 'pooch' to download "
                          "data sets; install it with: pip install 'aprnb[datasets]' "
                          "(or: pip install pooch)") from None
    return pooch


def _entry(name):
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    try:
        return REGISTRY[name]
    except KeyError:
        pass
    known = sorted(REGISTRY)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown data set {name!r}{hint}; known data sets: "
                     f"{', '.join(known)}")


def get_data_home(data_home=None):
    """The root of the data set cache.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Use this folder. When None, the ``APRNB_DATA`` environment variable is used
        if it is set and not empty, else ``pooch.os_cache("aprnb")``.

    Returns
    -------
    str
        An absolute path (``~`` expanded). The folder is not created here.
    """
    if data_home is None:
        data_home = os.environ.get(ENV_VAR) or None
    if data_home is None:
        data_home = _import_pooch().os_cache("aprnb")
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(f"data_home must be a path (str or os.PathLike), got "
                        f"{type(data_home).__name__}")
    return os.path.abspath(os.path.expanduser(os.fspath(data_home)))


def _file_url_path(url):
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{url}: only local file:// URLs are supported (host "
                         f"{parts.netloc!r})")
    return urllib.request.url2pathname(parts.path)


def _download_file_url(url, output_file, pooch_obj=None, check_only=False):
    """A pooch downloader for ``file://`` URLs: copies the local file.

    ``output_file`` is a path or a binary file object, as for pooch's downloaders.
    """
    src = _file_url_path(url)
    if check_only:
        return os.path.isfile(src)
    with open(src, "rb") as fin:
        if hasattr(output_file, "write"):
            shutil.copyfileobj(fin, output_file)
        else:
            with open(output_file, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    return None


def _git_blob_sha1(path):
    """The Git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` + its bytes."""
    h = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _GitBlobChecked:
    """Wrap a downloader so that the downloaded file must have a given Git blob id.

    pooch downloads into a temporary file and deletes it when the downloader
    raises, so a file failing the check never reaches the cache.
    """

    def __init__(self, downloader, digest, source):
        self.downloader = downloader
        self.digest = digest.lower()
        self.source = source

    def __call__(self, url, output_file, pooch_obj):
        self.downloader(url, output_file, pooch_obj)
        if hasattr(output_file, "write"):
            output_file.flush()
            output_file = output_file.name
        got = _git_blob_sha1(output_file)
        if got != self.digest:
            raise ValueError(f"Git blob SHA-1 hash of downloaded file ({self.source}) does "
                             f"not match the known hash: expected {_GIT_SHA1}:{self.digest} "
                             f"but got {got}")


def _retrieve(pooch, name, folder, url, known_hash, fname, members):
    """Download one registry file into ``folder`` (or find it there), verified."""
    target = os.path.join(folder, fname)
    scheme = urllib.parse.urlsplit(url).scheme
    # file:// is ours; None lets pooch pick its own downloader (http, https, ftp, ...).
    downloader = _download_file_url if scheme == "file" else None
    pooch_hash = known_hash
    alg, _, digest = known_hash.partition(":")
    if alg == _GIT_SHA1:
        # pooch cannot check a Git blob id: check it here, on the cached copy and
        # inside the downloader (before pooch moves the download into the cache).
        pooch_hash = None
        if downloader is None:
            if scheme not in ("http", "https"):
                raise ValueError(f"data set {name!r}: a {_GIT_SHA1} hash needs an http(s) "
                                 f"or file URL, got {url}")
            downloader = pooch.HTTPDownloader()
        if os.path.isfile(target) and _git_blob_sha1(target) != digest.lower():
            os.remove(target)
        downloader = _GitBlobChecked(downloader, digest, fname)
    processor = None
    if members and fname.endswith(".zip"):
        processor = pooch.Unzip(members=list(members), extract_dir=".")
    try:
        pooch.retrieve(url, known_hash=pooch_hash, fname=fname, path=folder,
                       processor=processor, downloader=downloader)
    except ValueError as e:
        if "hash" not in str(e).lower():
            raise
        # pooch already dropped the bad download; an outdated or damaged copy that
        # pooch tried to replace may still sit in the cache: remove it too.
        if os.path.isfile(target):
            os.remove(target)
        raise ValueError(
            f"data set {name!r}: the checksum of {fname} downloaded from {url} does not "
            f"match the registry ({e}). The download was corrupted or truncated, or the "
            f"file changed upstream; it was not kept in the cache ({folder}). Check your "
            f"internet connection and try again; if it keeps failing, delete the cached "
            f"files in {folder} and see docs/datasets.md to fetch them by hand.") from e
    except OSError as e:
        raise OSError(
            f"data set {name!r}: could not download {fname} from {url} into {folder} "
            f"({e}). Check your internet connection and that the folder is writable; "
            f"offline, copy the file by hand to {target} (see docs/datasets.md).") from e


def download(name, data_home=None):
    """Download a data set's files into the cache, verify them, and return where they are.

    Files already in the cache whose checksum matches are not downloaded again.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY`: ``"gowalla"``, ``"lastfm"``, ``"movielens-100k"``
        or ``"movielens-1m"``.
    data_home : str or os.PathLike, optional
        The cache root (see :func:`get_data_home`); the files go to
        ``<data_home>/<name>/``.

    Returns
    -------
    str
        The path to pass to :func:`aprnb.data.open_dataset` (with the entry's
        ``format``): the data set's folder, or the extracted ratings file.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or a downloaded file fails its checksum (the file
        is deleted).
    ImportError
        If pooch is not installed.
    OSError
        If a download fails (no connection, missing source file).
    """
    entry = _entry(name)
    pooch = _import_pooch()
    folder = os.path.join(get_data_home(data_home), name)
    for url, known_hash, fname in entry["files"]:
        _retrieve(pooch, name, folder, url, known_hash, fname, entry.get("unzip"))
    return os.path.normpath(os.path.join(folder, entry.get("path", ".")))


def fetch(name, data_home=None, split=None, seed=0):
    """Download (once), verify and load a public data set.

    Parameters
    ----------
    name : str
        ``"gowalla"`` (NGCF/LightGCN split), ``"lastfm"`` (hetrec2011, LightGCN-PyTorch
        split), ``"movielens-100k"`` or ``"movielens-1m"``; any key of
        :data:`REGISTRY`.
    data_home : str or os.PathLike, optional
        Cache root; default ``$APRNB_DATA``, else ``pooch.os_cache("aprnb")``.
        Files are stored in ``<data_home>/<name>/``.
    split : {"given", "loo", "holdout"}, optional
        Passed to :func:`aprnb.data.open_dataset`. None uses the data set's
        default: ``"given"`` (the published train/test files) for Gowalla and
        Last.fm, ``"loo"`` (each user's latest interaction by timestamp held out,
        the APR paper's protocol) for MovieLens.
    seed : int
        Seed for the random parts of the split, passed to ``open_dataset``.

    Returns
    -------
    aprnb.data.Dataset

    Raises
    ------
    ValueError
        Unknown ``name``, or a download that fails its checksum (the message names
        the data set; the bad file is not kept).
    ImportError
        pooch is not installed (``pip install 'aprnb[datasets]'``).
    OSError
        A download failed (e.g. no connection). See ``docs/datasets.md`` for the
        offline case.

    Examples
    --------
    >>> ds = aprnb.datasets.fetch("lastfm")                       # doctest: +SKIP
    >>> ds = aprnb.datasets.fetch("movielens-1m", split="holdout", seed=1)  # doctest: +SKIP
    """
    entry = _entry(name)
    path = download(name, data_home=data_home)
    return data.open_dataset(path, format=entry["format"],
                             split=entry["split"] if split is None else split, seed=seed,
                             name=name, **entry.get("kwargs", {}))
