"""The package's shape: imports between wings point down only, so the architecture stays readable.

backbones < face < datasets < metric < anonymize < annotation < evaluation < cli. Every import counts, lazy ones
inside functions included; ``perface/__init__.py`` is the public facade and may reach any wing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "perface"

#: wing -> wings it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "backbones": set(),
    "face": {"backbones"},
    "datasets": {"face"},
    "metric": {"backbones", "face", "datasets"},
    "anonymize": {"backbones", "face", "datasets", "metric"},
    "annotation": {"backbones", "face", "datasets", "metric", "anonymize"},
    "evaluation": {"backbones", "face", "datasets", "metric", "anonymize", "annotation"},
    "cli": {"backbones", "face", "datasets", "metric", "anonymize", "annotation", "evaluation"},
}


def _wing(module: str) -> str | None:
    """The wing of a dotted module name inside perface (None for the package root or outside it)."""
    parts = module.split(".")
    if parts[0] != "perface" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # "from perface import face" imports the wing itself
            names = [f"{base}.{a.name}" for a in node.names] if base == "perface" else [base]
            out += [(node.lineno, n) for n in names]
    return out


def _arrows() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src_wing = _wing(_module_name(path))
        if src_wing is None:  # perface/__init__.py: the public API facade
            continue
        for line, target in _imports(path):
            dst_wing = _wing(target)
            if dst_wing is None or dst_wing == src_wing or dst_wing not in ALLOWED:
                continue
            if dst_wing not in ALLOWED.get(src_wing, set()):
                found.append((str(path.relative_to(PACKAGE.parent)), line, src_wing, dst_wing))
    return found


def test_every_module_sits_in_a_known_wing() -> None:
    wings = {_wing(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {None}
    assert wings <= set(ALLOWED), f"modules outside the known wings: {sorted(wings - set(ALLOWED))}"


def test_imports_point_down_only() -> None:
    bad = _arrows()
    assert not bad, "imports running up between wings:\n" + "\n".join(
        f"  {f}:{line}: {a} imports {b}" for f, line, a, b in bad)


@pytest.mark.parametrize(("source", "expected"), [
    ("from perface.evaluation.measures import x\n", [("metric", "evaluation")]),
    ("from perface import anonymize\n", [("metric", "anonymize")]),
    ("def f():\n    import perface.anonymize.swap\n", [("metric", "anonymize")]),
    ("from ..face.io import read_image\nfrom .groups import x\n", []),
])
def test_checker_sees_each_import_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       source: str, expected: list[tuple[str, str]]) -> None:
    """The checker itself: module-level, lazy and relative imports are all seen (else the test above is empty)."""
    pkg = tmp_path / "perface"
    (pkg / "metric").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "metric" / "__init__.py").write_text("")
    (pkg / "metric" / "probe.py").write_text(source)
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    assert [(a, b) for _, _, a, b in _arrows()] == expected
