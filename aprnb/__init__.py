"""aprnb: fast CPU BPR and Adversarial Personalized Ranking for matrix factorization.

>>> import aprnb
>>> X = aprnb.data.make_synthetic(random_state=0)
>>> train, test = aprnb.data.leave_one_out(X, random_state=0)
>>> bpr = aprnb.BPR(epochs=20, random_state=0, show_progress=False).fit(train)
>>> aprnb.evaluate(bpr, train, test, k=[100], protocol="loo")   # doctest: +SKIP
"""
__version__ = "0.1.0"

from . import data, kernels
from .evaluation import evaluate
from .io import load
from .models import APR, BPR, DivergenceError, ItemPop, NotFittedError
from .robustness import perturb, robustness

__all__ = ["BPR", "APR", "ItemPop", "evaluate", "load", "perturb", "robustness", "data", "kernels",
           "DivergenceError", "NotFittedError", "__version__"]
