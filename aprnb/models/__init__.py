"""Model classes: MF-BPR, AMF (APR), VAT, CDAE and the ItemPop baseline."""
from ._base import NotFittedError
from ._training import DivergenceError
from .apr import APR
from .bpr import BPR
from .cdae import CDAE
from .callbacks import Callback, EarlyStopping, Validation
from .irgan import IRGAN
from .itempop import ItemPop
from .neumf import NeuMF
from .vat import VAT

__all__ = ["BPR", "APR", "VAT", "ItemPop", "CDAE", "IRGAN", "NeuMF", "DivergenceError",
           "NotFittedError", "Callback", "Validation", "EarlyStopping"]
