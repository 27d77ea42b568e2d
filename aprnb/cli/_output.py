"""What the commands print: JSON-ready values, metric lines, one-line messages.

Standard library only (the parser uses :func:`one_line` before anything heavy is
imported).
"""
import json
import math


def one_line(e):
    """``e`` (an exception or a message) as one line of text."""
    return " ".join(str(e).split()) or type(e).__name__


def clean(x):
    """JSON-ready: NaN and inf become null, numpy scalars and arrays Python objects."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


def emit_json(obj, path=None):
    """Print ``obj`` as one line of JSON, or write it to the file ``path``."""
    text = json.dumps(clean(obj), allow_nan=False)
    if path is None or path == "-":
        print(text)
        return
    with open(path, "w") as fh:
        fh.write(text + "\n")


def metrics_line(res):
    return ("  ".join(f"{k}={v:.4f}" for k, v in res.items() if k != "n_users")
            + f"  (users={res['n_users']})")


def describe(ds):
    return {"name": ds.name, "n_users": ds.n_users, "n_items": ds.n_items,
            "train": int(ds.train.nnz), "test": int(ds.test.nnz), "split": ds.split}
