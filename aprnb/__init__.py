"""aprnb: fast CPU BPR and Adversarial Personalized Ranking for matrix factorization.

>>> import aprnb
>>> X = aprnb.data.make_synthetic(random_state=0)
>>> train, test = aprnb.data.leave_one_out(X, random_state=0)
>>> bpr = aprnb.BPR(epochs=20, random_state=0, show_progress=False).fit(train)
>>> aprnb.evaluate(bpr, train, test, k=[100], protocol="loo")   # doctest: +SKIP

The public names are imported on first use (PEP 562), so that ``import aprnb``
and ``aprnb --help`` do not pay for importing Numba and compiling kernels.
"""
import importlib

__version__ = "0.1.0"

#: public name -> submodule that defines it
_PUBLIC = {"BPR": "models", "APR": "models", "VAT": "models", "ItemPop": "models",
           "CDAE": "models",
           "DivergenceError": "models", "NotFittedError": "models", "Validation": "models",
           "EarlyStopping": "models", "IRGAN": "models", "NeuMF": "models",
           "evaluate": "evaluation", "load": "io",
           "perturb": "perturbation", "robustness": "perturbation"}
_SUBMODULES = ("data", "datasets", "kernels")

__all__ = ["BPR", "APR", "VAT", "ItemPop", "Validation", "EarlyStopping", "evaluate", "load",
           "perturb", "robustness", "data", "CDAE", "IRGAN", "NeuMF",
           "datasets", "kernels", "DivergenceError", "NotFittedError", "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'aprnb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
