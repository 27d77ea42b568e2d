"""Model classes: MF-BPR, AMF (APR) and the ItemPop baseline."""
from ._base import DivergenceError, NotFittedError
from .apr import APR
from .bpr import BPR
from .itempop import ItemPop

__all__ = ["BPR", "APR", "ItemPop", "DivergenceError", "NotFittedError"]
