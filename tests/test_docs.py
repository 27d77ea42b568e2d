"""The docs cite functions, not line numbers, and every function they cite exists.

A citation is a code span ``path.py::name`` (a module or test file and a
function, class or constant in it) or ``::name``, which continues the last
path cited before it in the same file. Paths may leave out ``aprnb/`` or
``tests/``. Markdown links to repository files must point to files that exist.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(ROOT.glob("docs/*.md")) + [ROOT / "README.md", ROOT / "bench" / "README.md"]
CITE = re.compile(r"([\w./-]*\.py)?::(\w+)")
LINK = re.compile(r"\]\((\.\./|\./)?((?:aprnb|tests|bench|docs)/[^)#\s]*)")
LINE_NUMBER = re.compile(r"\blines? \d+\b|\.py:\d+|#L\d+")


def _file(path):
    for cand in (path, "aprnb/" + path, "tests/" + path):
        if (ROOT / cand).is_file():
            return ROOT / cand
    return None


def _names(path, _cache={}):
    """Every function, class and assigned name defined in the file, at any depth."""
    if path not in _cache:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        _cache[path] = names
    return _cache[path]


def citations(doc):
    """``(line number in the doc, path or None, name)`` of every citation in ``doc``."""
    last, out = None, []
    for no, line in enumerate(doc.read_text().splitlines(), start=1):
        for span in re.findall(r"`([^`]+)`", line):
            if ".py::" not in span and not span.startswith("::"):
                continue            # e.g. MovieLens' user::item::rating
            for path, name in CITE.findall(span):
                last = path or last
                out.append((no, last, name))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_functions_exist(doc):
    bad = []
    for no, path, name in citations(doc):
        f = _file(path) if path else None
        if f is None:
            bad.append(f"line {no}: {path}::{name}: no such file")
            continue
        names = _names(f)
        ok = name in names or (name.endswith("_") and any(n.startswith(name) for n in names))
        if not ok:
            bad.append(f"line {no}: {path}::{name}: not defined in {f.relative_to(ROOT)}")
    assert not bad, f"{doc.name} cites what does not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_to_repository_files_exist(doc):
    missing = [m.group(2) for m in LINK.finditer(doc.read_text())
               if not (doc.parent / (m.group(1) or "") / m.group(2)).exists()
               and not (ROOT / m.group(2)).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"


def test_derivations_cite_no_line_numbers():
    text = (ROOT / "docs" / "derivations.md").read_text()
    assert not LINE_NUMBER.findall(text)


def test_the_checker_sees_citations():
    """The citation pattern finds both forms (a checker that finds nothing passes all)."""
    found = citations(ROOT / "docs" / "derivations.md")
    assert len(found) > 40
    assert any(path and path.endswith("_math.py") for _, path, _ in found)
