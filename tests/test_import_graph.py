"""The import graph of ``aprnb``: no cycles, no upward imports, a lazy top-level package.

Every module under ``aprnb/`` is parsed with :mod:`ast` (nothing is imported).
Every import of an ``aprnb`` module is an edge, also an import inside a function:
it runs later, but it ties the two modules together all the same. Relative imports
are resolved, ``from . import x`` is an edge to the submodule ``x`` when there is
one, and importing ``a.b.c`` is also an edge to the package ``a.b`` (whose
``__init__`` runs first) unless the importer lives inside ``a.b``.

:data:`LAYERS` is the intended layering (``docs/layout.md``), lowest first: a module
may import modules of its own layer and of lower layers only. The checks are run
room by room (a room is ``aprnb.<name>``: one top-level module or subpackage), so that
a room with a known violation can be marked as such while every other room stays
checked.
"""
import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "aprnb"

#: The layers, lowest first; a name stands for that module and everything under it.
LAYERS = [
    # aprnb/__init__.py: __version__ and the table of lazy public names; it imports no
    # aprnb module when it runs (test_top_level_package_is_lazy), so anything may read
    # __version__ from it.
    ("top-level package", ["aprnb"]),
    # jitted functions: arrays and scalars only (numba, llvmlite, numpy, standard library)
    ("kernels", ["aprnb.kernels"]),
    # checks, threads, memory, the .npz format, provenance, the NumPy reference twins,
    # the machine description and timing statistics of benchmarks
    ("foundation", ["aprnb._validation", "aprnb._threads", "aprnb._memory", "aprnb._npz",
                    "aprnb._provenance", "aprnb._modelfile", "aprnb._machine", "aprnb._timing",
                    "aprnb.reference"]),
    ("data", ["aprnb.data", "aprnb.datasets"]),
    ("evaluation", ["aprnb.evaluation"]),
    ("models", ["aprnb.models"]),
    # what takes fitted models: load() rebuilding them, perturbations and robustness
    ("model users", ["aprnb.io", "aprnb.perturbation", "aprnb.robustness", "aprnb.stats",
                     "aprnb.distributed"]),
    ("study", ["aprnb.study", "aprnb.demo", "aprnb.benchmark"]),
    ("command line", ["aprnb.cli", "aprnb.__main__"]),
]

#: Third-party packages the kernels may import (besides the standard library).
KERNEL_DEPENDENCIES = {"numba", "llvmlite", "numpy"}

#: (check, room) pairs with a known violation, fixed on another branch (strict: they
#: must fail today, and the mark goes when they pass).
KNOWN = {}


# ---------------------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------------------
def _modules():
    """dotted name -> (path, is_package) for every module under aprnb/."""
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return mods


MODULES = _modules()


def _public_names():
    """The lazy table of aprnb/__init__.py: public name -> submodule."""
    tree = ast.parse(MODULES["aprnb"][0].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_PUBLIC"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("aprnb/__init__.py has no _PUBLIC table")


PUBLIC = _public_names()


class _Imports(ast.NodeVisitor):
    """Every import statement of a module: (dotted names, node, inside a function?)."""

    def __init__(self, name, is_package):
        self.package = name if is_package else name.rpartition(".")[0]
        self.found = []
        self.depth = 0

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for alias in node.names:
            self.found.append((alias.name, None, node, self.depth > 0))

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[:len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            self.found.append((base, alias.name, node, self.depth > 0))


def _imports(name):
    path, is_package = MODULES[name]
    visitor = _Imports(name, is_package)
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


def _deepest_module(dotted):
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return None


def _edges():
    """(importer, imported, where, lazy, through_door) for every import of an aprnb module.

    ``through_door``: a public name reached through the top-level package's lazy table
    (``from . import evaluate``); the edge goes to the module that defines it.
    """
    edges = []
    for name in MODULES:
        for base, alias, node, lazy in _imports(name):
            if base.split(".")[0] != "aprnb":
                continue
            door = False
            if alias is not None and f"{base}.{alias}" in MODULES:
                target = f"{base}.{alias}"
            elif base == "aprnb" and alias in PUBLIC:
                target, door = f"aprnb.{PUBLIC[alias]}", True
            else:
                target = _deepest_module(base)
            where = f"{MODULES[name][0].relative_to(PACKAGE.parent)}:{node.lineno}"
            if target != name:
                edges.append((name, target, where, lazy, door))
            # the packages above the target run first (except the importer's own)
            parts = target.split(".")
            for n in range(2, len(parts)):
                pkg = ".".join(parts[:n])
                if not name.startswith(pkg + "."):
                    edges.append((name, pkg, where, lazy, door))
    return list(dict.fromkeys(edges))


EDGES = _edges()


def _layer(module):
    """Index in LAYERS of the longest name that covers ``module``."""
    best = None
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            # "aprnb" stands for the top-level package alone
            if module == n or (n != "aprnb" and module.startswith(n + ".")):
                if best is None or len(n) > best[1]:
                    best = (i, len(n))
    assert best is not None, f"{module} is in no layer; add it to LAYERS in {__file__}"
    return best[0]


def _room(module):
    return ".".join(module.split(".")[:2])


def _cycles():
    """Each strongly connected component of more than one module, as one cycle path
    through it (a list of edges)."""
    graph = {m: [] for m in MODULES}
    for a, b, where, lazy, _ in EDGES:
        graph[a].append((b, where, lazy))
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def strongconnect(v):          # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in graph:
        if v not in index:
            strongconnect(v)
    return [(comp, _path_back(graph, min(comp), comp)) for comp in comps]


def _path_back(graph, start, comp):
    """The shortest cycle start -> ... -> start inside ``comp`` (breadth first)."""
    prev, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w, where, lazy in graph[v]:
                if w not in comp or (w in prev and w != start):
                    continue
                if w == start:
                    path, node = [(v, w, where, lazy)], v
                    while node != start:
                        path.append(prev[node])
                        node = prev[node][0]
                    return path[::-1]
                prev[w] = (v, w, where, lazy)
                nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def _show(edge):
    a, b, where, lazy = edge[:4]
    return f"{a} -> {b} ({where}{', inside a function' if lazy else ''})"


# ---------------------------------------------------------------------------------------
# the checks, room by room
# ---------------------------------------------------------------------------------------
ROOMS = sorted({_room(m) for m in MODULES if m != "aprnb"})


def _room_params(check):
    return [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=KNOWN[check, r]))
            if (check, r) in KNOWN else r for r in ROOMS]


@pytest.mark.parametrize("room", _room_params("cycle"))
def test_no_cycle_through(room):
    found = [path for comp, path in _cycles() if any(_room(m) == room for m in comp)]
    assert not found, f"import cycles through {room}:\n" + "\n".join(
        "  " + "\n  ".join(_show(e) for e in path) for path in found)


@pytest.mark.parametrize("room", _room_params("upward"))
def test_no_upward_import_from(room):
    up = [e for e in EDGES if _room(e[0]) == room and _layer(e[1]) > _layer(e[0])]
    assert not up, f"{room} imports from a higher layer:\n" + "\n".join(
        f"  {_show(e)}: layer {LAYERS[_layer(e[0])][0]!r} imports layer "
        f"{LAYERS[_layer(e[1])][0]!r}" for e in up)


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


def test_no_public_name_through_the_top_level_package():
    """Inside aprnb, import a name from the module that defines it, not through the
    lazy table of ``aprnb/__init__.py`` (the public door is for users)."""
    door = [e for e in EDGES if e[4]]
    assert not door, "imports through aprnb's lazy table:\n" + "\n".join(
        "  " + _show(e) for e in door)


def _external(module, only_eager=False):
    """Top-level names of the non-aprnb packages ``module`` imports, with where."""
    out = []
    for base, alias, node, lazy in _imports(module):
        top = base.split(".")[0]
        if getattr(node, "level", 0) == 0 and top != "aprnb" and not (only_eager and lazy):
            out.append((top, f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{node.lineno}"))
    return out


def test_kernels_import_only_numba_numpy_and_the_standard_library():
    kernels = [name for name, _ in LAYERS].index("kernels")
    bad = [(m, top, where) for m in MODULES if _layer(m) == kernels
           for top, where in _external(m)
           if top not in KERNEL_DEPENDENCIES and top not in sys.stdlib_module_names]
    assert not bad, "kernels importing other packages: " + ", ".join(
        f"{m} imports {top} ({where})" for m, top, where in bad)
    up = [e for e in EDGES if _layer(e[0]) == kernels and _layer(e[1]) != kernels]
    assert not up, "kernels importing aprnb modules outside kernels: " + ", ".join(
        _show(e) for e in up)


def _eager_closure(start):
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [b for a, b, _, lazy, _ in EDGES if a == m and not lazy]
    return seen


def test_command_line_imports_only_the_standard_library_before_argparse():
    """``aprnb --help`` must not wait for NumPy or Numba: what ``aprnb.cli`` and
    ``aprnb.__main__`` import when they are loaded is standard library only."""
    closure = _eager_closure("aprnb.__main__") | _eager_closure("aprnb.cli")
    bad = [(m, top, where) for m in sorted(closure) for top, where in _external(m, True)
           if top not in sys.stdlib_module_names]
    assert not bad, "loaded before argparse runs: " + ", ".join(
        f"{m} imports {top} ({where})" for m, top, where in bad)


def test_top_level_package_is_lazy():
    """``import aprnb`` imports no aprnb module and nothing outside the standard
    library; the public names are imported on first use."""
    eager = [(top, where) for top, where in _external("aprnb", only_eager=True)
             if top not in sys.stdlib_module_names]
    assert not eager, f"aprnb/__init__.py imports eagerly: {eager}"
    own = [e for e in EDGES if e[0] == "aprnb"]
    assert not own, "aprnb/__init__.py imports aprnb modules: " + ", ".join(map(_show, own))
    code = ("import sys; import aprnb; heavy = ('numba', 'numpy', 'scipy', 'tqdm', 'llvmlite');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
            " or (m.startswith('aprnb.'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"import aprnb loaded {proc.stdout.strip()}"


def test_public_names_point_at_their_modules():
    """Each name of the lazy table is defined or imported at the top of its module."""
    for public, sub in PUBLIC.items():
        name = f"aprnb.{sub}"
        assert name in MODULES, f"_PUBLIC[{public!r}] names a missing module {name}"
        tree = ast.parse(MODULES[name][0].read_text())
        defined = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        assert public in defined, f"{name} does not define {public}"


def test_the_graph_sees_the_imports():
    """The parser is not vacuous: known edges of every kind are found."""
    pairs = {(a, b) for a, b, *_ in EDGES}
    assert ("aprnb.cli._commands", "aprnb.study.reproduce") in pairs     # from ..x.y import
    assert ("aprnb.cli._commands", "aprnb.study") in pairs               # its package runs
    assert ("aprnb.data", "aprnb.data.open") in pairs                     # from .x import
    assert ("aprnb.__main__", "aprnb.cli") in pairs
    assert any(lazy for a, b, _, lazy, _ in EDGES if a == "aprnb.cli")    # inside main()
    assert ("aprnb.data.open", "aprnb.data") not in pairs                 # own package
