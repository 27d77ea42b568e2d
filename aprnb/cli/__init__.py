"""Command line: ``aprnb demo | train | evaluate | robustness | recommend | reproduce | bench``.

Only the standard library is imported before argparse has run, so that ``aprnb
--help`` answers at once; the commands (and with them NumPy, Numba and the models)
are imported after it. Data is opened with :func:`aprnb.data.open_dataset`. A saved
model records the split it was trained on, and ``evaluate``, ``robustness``,
``recommend`` and ``train --init`` reuse that split (and, without ``--data``, the
recorded data files) unless told otherwise.

Exit codes: 0 success; 2 a usage error (bad option, bad input data, a split
that contradicts the model); 1 a failure while running (missing or unreadable
file, divergence, out of memory); 130 interrupted. Every error is one line on
stderr.

Rooms: ``_parser`` (the argparse definition), ``_options`` (parsed options -> data
set, protocol, model), ``_commands`` (one function per command), ``_output`` (JSON
and text lines); :func:`main` runs a command and turns its errors into exit codes.
"""
import sys
import warnings

from ._output import one_line
from ._parser import build_parser

__all__ = ["build_parser", "main"]


def _warn_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"aprnb: warning: {one_line(message)}", file=sys.stderr)


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    if not getattr(a, "command", None):
        ap.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warn_one_line
            # Lazy: the commands import NumPy, Numba and the models, which ``--help``,
            # ``--version`` and usage errors must not wait for.
            from ._commands import COMMANDS
            return COMMANDS[a.command](a)
    except (ValueError, TypeError) as e:
        print(f"aprnb {a.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, FloatingPointError, ImportError) as e:
        # FloatingPointError covers aprnb.DivergenceError; OSError missing files, disk and
        # permission problems; ImportError an optional extra not installed (--backend ray).
        print(f"aprnb {a.command}: error: {one_line(e)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"aprnb {a.command}: error: out of memory; use smaller data, fewer factors or "
              f"float32", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
