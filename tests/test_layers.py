"""The package layout is the architecture: imports point one way. Checked on the source
(every import, also those inside functions, which are no way around it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recarchive"

# what each package must never import (the layers above it)
FORBIDDEN = {
    "ans": {"models", "codecs", "rec", "storage", "archives", "report", "bench", "distributed",
            "commands", "api", "cli", "training"},
    "entropy": {"models", "codecs", "rec", "storage", "archives", "report", "bench",
                "distributed", "commands", "api", "cli", "training"},
    "exact": {"models", "codecs", "rec", "storage", "archives", "report", "bench",
              "distributed", "commands", "api", "cli", "training"},
    "models": {"codecs", "storage", "archives", "report", "bench", "distributed", "commands",
               "api", "cli"},
    "storage": {"archives", "report", "bench", "distributed", "commands", "api", "cli"},
    "archives": {"report", "bench", "distributed", "commands", "api", "cli", "training"},
    "report": {"bench", "distributed", "commands", "api", "cli", "training"},
    "distributed": {"commands", "api", "cli", "bench"},
}


def imports_of(package: str, root: Path = PACKAGE) -> dict[str, set[str]]:
    """recarchive subpackage -> the modules of this package that import it."""
    found: dict[str, set[str]] = {}
    for path in (root / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "recarchive" and len(parts) > 1:
                    found.setdefault(parts[1], set()).add(str(path.relative_to(root)))
    return found


def test_imports_point_one_way():
    wrong = {}
    for package, forbidden in FORBIDDEN.items():
        for target, modules in imports_of(package).items():
            if target in forbidden:
                wrong[f"{package} -> {target}"] = sorted(modules)
    assert wrong == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    fake = tmp_path / "archives"
    fake.mkdir()
    (fake / "sneaky.py").write_text("def f():\n    from recarchive.report import embed\n")
    assert imports_of("archives", tmp_path) == {"report": {"archives/sneaky.py"}}
