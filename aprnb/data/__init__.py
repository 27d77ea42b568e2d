"""Data layer: ``open_dataset`` and the readers, splitters and a synthetic generator.

``open.py`` (sniff, load, split), ``loaders.py`` (the formats whose ids are indices),
``delimited.py`` (CSV/TSV logs with any ids), ``negatives.py`` (sampled-protocol
negatives), ``_text.py`` (paths, lines, plain integers, index caps), ``dataset.py``
(the containers), ``split.py``, ``synthetic.py``.
"""
from .dataset import Dataset, Interactions
from .delimited import load_delimited, load_interactions
from .loaders import load_lastfm, load_lightgcn, load_ncf
from .open import open_dataset, sniff_format
from .split import holdout_split, leave_one_out, merge, validation_split
from .synthetic import make_synthetic

__all__ = ["open_dataset", "sniff_format", "Dataset", "Interactions", "load_lightgcn",
           "load_ncf", "load_interactions",
           "load_delimited", "load_lastfm", "leave_one_out", "holdout_split",
           "validation_split", "merge", "make_synthetic"]
