"""Data layer: loaders, splitters and a synthetic generator."""
from .loaders import (Dataset, Interactions, load_delimited, load_interactions, load_lastfm,
                      load_lightgcn, load_ncf)
from .open import open_dataset, sniff_format
from .split import holdout_split, leave_one_out, merge, validation_split
from .synthetic import make_synthetic

__all__ = ["open_dataset", "sniff_format", "Dataset", "Interactions", "load_lightgcn",
           "load_ncf", "load_interactions",
           "load_delimited", "load_lastfm", "leave_one_out", "holdout_split",
           "validation_split", "merge", "make_synthetic"]
