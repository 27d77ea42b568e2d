"""Model classes: MF-BPR, AMF (APR), VAT and the ItemPop baseline."""
from ._base import NotFittedError
from ._training import DivergenceError
from .apr import APR
from .bpr import BPR
from .callbacks import Callback, EarlyStopping, Validation
from .itempop import ItemPop
from .neumf import NeuMF
from .vat import VAT

__all__ = ["BPR", "APR", "VAT", "ItemPop", "NeuMF", "DivergenceError", "NotFittedError", "Callback",
           "Validation", "EarlyStopping"]
