"""Model classes: MF-BPR, AMF (APR) and the ItemPop baseline."""
from ._base import NotFittedError
from ._training import DivergenceError
from .apr import APR
from .bpr import BPR
from .callbacks import Callback, EarlyStopping, Validation
from .itempop import ItemPop

__all__ = ["BPR", "APR", "ItemPop", "DivergenceError", "NotFittedError", "Callback",
           "Validation", "EarlyStopping"]
