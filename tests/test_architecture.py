"""The core never imports the adapters (fhir/, web/, cli, server)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ror"
CORE = [
    "terminology",
    "store",
    "search",
    "capacity",
    "access",
    "quality",
    "geo",
    "directory",
    "db",
    "reports",
    "validation",
    "write",
    "workflow",
]
CORE += ["export"]  # bulk export and open data
CORE += ["reporting"]  # DGOS daily report
CORE += ["tension", "urgences", "subscriptions"]  # regional modules (TES, emergency activity, FHIR push)
CORE += ["exercise"]  # crisis exercise sandbox (SI-VIC replay)
ADAPTERS = ("ror.fhir", "ror.web", "ror.cli", "ror.server", "ror.routing")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_core_does_not_import_adapters() -> None:
    offenders = []
    files = [p for pkg in CORE for p in (SRC / pkg).rglob("*.py")] + [
        SRC / f for f in ("services.py", "errors.py", "memo.py", "malloc.py")
    ]
    assert len(files) > 10
    for path in files:
        for name in _imports(path):
            if name.startswith(ADAPTERS):
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []
