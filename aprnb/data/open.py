"""``open_dataset``: the one public way to open data (sniff -> load -> split).

Every CLI command and :func:`aprnb.datasets.fetch` go through it. The returned
:class:`~aprnb.data.Dataset` carries its ``split`` specification: the keyword
arguments that reopen the same data with the same split, which a fitted model
records so that evaluation can check it is scored on data it did not train on.
"""
import os
import warnings

from .._validation import check_float
from .delimited import load_delimited
from .loaders import load_lastfm, load_lightgcn, load_ncf
from .split import holdout_split, leave_one_out, merge

FORMATS = ("auto", "lightgcn", "lastfm", "ncf", "delimited")
SPLITS = ("given", "loo", "holdout")


def sniff_format(path):
    """The format of ``path``: a folder with ``train.txt`` ("lightgcn") or ``train.tsv``
    ("lastfm"), an NCF prefix with ``.train.rating`` ("ncf"), or a file ("delimited").

    Raises ``FileNotFoundError`` when nothing exists at ``path``.
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "train.txt")):
            return "lightgcn"
        if os.path.isfile(os.path.join(path, "train.tsv")):
            return "lastfm"
        raise ValueError(f"{path}: a folder without train.txt (LightGCN format) or train.tsv "
                         f"(Last.fm format); pass a data file or prefix, or format=")
    if os.path.isfile(path + ".train.rating"):
        return "ncf"
    if os.path.isfile(path):
        return "delimited"
    raise FileNotFoundError(f"{path} does not exist (neither a data folder, an NCF prefix "
                            f"with {os.path.basename(path)}.train.rating, nor a file); check "
                            f"the path (relative paths are resolved from {os.getcwd()})")


def _check_path(p, name):
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(p).__name__}")
    p = os.fspath(p)
    if not p:
        raise ValueError(f"{name} is empty; pass a path")
    return os.path.abspath(p)


def _check_arguments(path, format, split, seed, test, negatives, test_fraction):
    """The checked ``(path, test, negatives, test_fraction)``; paths made absolute."""
    path = _check_path(path, "path")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    test_fraction = check_float(test_fraction, "test_fraction", 0.0, 1.0, False, False)
    test = None if test is None else _check_path(test, "test")
    negatives = None if negatives is None else _check_path(negatives, "negatives")
    return path, test, negatives, test_fraction


def _load(path, fmt, test, negatives, sep, header, one_based, min_value, name):
    """Read ``path`` in format ``fmt``; the delimited-only arguments are refused for the
    other formats."""
    if fmt != "delimited":
        extra = [n for n, v in (("test", test), ("negatives", negatives)) if v is not None]
        if extra:
            raise ValueError(f"{' and '.join(extra)} files are for delimited data; the "
                             f"{fmt} format brings its own (pass format='delimited' for "
                             f"CSV/TSV files)")
        if min_value is not None:
            raise ValueError(f"min_value is for delimited data; the {fmt} format has no "
                             f"values to threshold")
    if fmt == "lightgcn":
        return load_lightgcn(path, name=name)
    if fmt == "lastfm":
        return load_lastfm(path)
    if fmt == "ncf":
        return load_ncf(path, name=name)
    return load_delimited(path, test, sep=sep, one_based=one_based, header=header,
                          name=name, negatives_path=negatives, min_value=min_value)


def _check_given(ds, path):
    """The data's own split must have a test set that shares nothing with training."""
    if ds.test is None:
        raise ValueError(f"{path} has no test set; pass split='loo' or split='holdout' "
                         f"(CLI: --split loo) to split it, or a test file (CLI: --test)")
    shared = ds.test.multiply(ds.train).count_nonzero()
    if shared:
        raise ValueError(f"{path}: {shared} of the {ds.test.nnz} test interactions are "
                         f"also training interactions, so the given split cannot be "
                         f"scored fairly; remove them from the test file, or re-split "
                         f"with split='loo' or 'holdout' (CLI: --split loo)")


def _resplit(ds, path, split, seed, test_fraction):
    """Merge and re-split ``ds`` in place ("loo" or "holdout"); drops its negatives."""
    if ds.negatives is not None:
        # stacklevel 3: the caller of open_dataset
        warnings.warn(f"split={split!r} re-splits {path}: its negatives belong to the "
                      f"given test items and are dropped; use split='given' for the "
                      f"sampled protocol", UserWarning, stacklevel=3)
    if split == "loo":
        src = (ds.interactions if ds.test is None and ds.interactions is not None
               else merge(ds.train, ds.test) if ds.test is not None else ds.train)
        ds.train, ds.test = leave_one_out(src, random_state=seed)
    else:
        full = merge(ds.train, ds.test) if ds.test is not None else ds.train
        ds.train, ds.test = holdout_split(full, test_fraction, random_state=seed)
    ds.negatives = None


def open_dataset(path, format="auto", split="given", seed=0, sep="auto", header="auto",
                 test=None, negatives=None, test_fraction=0.2, one_based=None, name=None,
                 min_value=None):
    """Open a data set and split it.

    Parameters
    ----------
    path : str or os.PathLike
        A LightGCN/NGCF folder (``train.txt``, ``test.txt``), a Last.fm folder
        (``train.tsv``, ``test.tsv``, 1-based ids), an NCF prefix
        (``<prefix>.train.rating``, ``.test.rating``, optional ``.test.negative``)
        or a delimited file ``user, item[, value][, timestamp]`` (the training
        file when ``test`` is given).
    format : {"auto", "lightgcn", "lastfm", "ncf", "delimited"}
        "auto" tells the format from what exists at ``path``.
    split : {"given", "loo", "holdout"}
        "given" uses the data's own test set (an error when it has none);
        "loo" merges train and test and holds out one interaction per user (the
        latest when a single delimited file has timestamps, else one at random);
        "holdout" merges and holds out ``test_fraction`` of each user's
        interactions at random. A re-split drops the given negatives (they
        belong to the given test items), with a warning.
    seed : int
        Seeds "loo" and "holdout".
    sep, header, one_based, min_value
        Delimited files only: see :func:`aprnb.data.load_interactions` (a zero value
        is no interaction, a negative one an error, unless ``min_value`` is given).
    test, negatives : path, optional
        Delimited files only: a test file in the same form, and sampled-protocol
        negatives (``(user,item)<TAB>j1<TAB>...`` or ``user,"[j1, j2, ...]"``, raw ids).
    test_fraction : float
        Used by ``split="holdout"``.
    name : str, optional

    Returns
    -------
    Dataset
        ``train``, ``test``, ``negatives``, ``user_ids``/``item_ids`` (the raw id
        of each index) and ``split``: the keyword arguments that reopen it
        (absolute paths), which a fitted model records.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        Malformed files (naming the file and line), or a split the data cannot have.
    """
    path, test, negatives, test_fraction = _check_arguments(path, format, split, seed, test,
                                                            negatives, test_fraction)
    fmt = sniff_format(path) if format == "auto" else format
    ds = _load(path, fmt, test, negatives, sep, header, one_based, min_value, name)
    if split == "given":
        _check_given(ds, path)
    else:
        _resplit(ds, path, split, seed, test_fraction)
    ds.split = dict(path=path, format=fmt, split=split, seed=seed, sep=sep, header=header,
                    test=test, negatives=negatives, test_fraction=test_fraction,
                    one_based=one_based, min_value=min_value)
    return ds
