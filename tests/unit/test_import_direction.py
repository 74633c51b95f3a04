"""Services share the wire contract and nothing else: each imports only
itself and services.common."""

from __future__ import annotations

import ast
import pathlib

import pytest

SERVICES = pathlib.Path(__file__).resolve().parents[2] / "services"
SHARED = "common"


def _imported_modules(source: pathlib.Path) -> list[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


@pytest.mark.parametrize(
    "package", sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists())
)
def test_a_service_imports_only_itself_and_common(package):
    allowed = {package, SHARED}
    crossings = [
        f"{source.relative_to(SERVICES.parent)}: {module}"
        for source in sorted((SERVICES / package).rglob("*.py"))
        for module in _imported_modules(source)
        if _service_of(module) not in (None, *allowed)
    ]
    assert crossings == []
