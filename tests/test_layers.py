"""The import rule, beyond what import-linter sees: no import between apps hides inside a
function (import-linter counts those as ordinary imports, so they pass whenever they point
downwards; hidden, they make the structure harder to read), and the apps named in the layers
contract are every app there is."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "console",
    "consent",
    "tenants",
    "accounts",
    "notifications",
    "audit",
    "mssp_portal",
    "entra_sandbox",
)


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                found += [(inner.lineno, alias.name) for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                found.append((inner.lineno, inner.module))
    return found


def test_no_import_between_apps_hides_in_a_function():
    offences = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for line, module in _function_level_imports(path):
                target = module.split(".")[0]
                if target in APPS and target != app:
                    offences.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offences, offences


def test_it_sees_a_function_level_import(tmp_path):
    # The check above must not pass because it looks nowhere.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from consent.models import Invitation\n")
    assert _function_level_imports(sample) == [(2, "consent.models")]


def test_the_layers_contract_names_every_app():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert set(config["root_packages"]) == set(APPS)
    on_disk = {p.parent.name for p in ROOT.glob("*/apps.py")} | {"entra_sandbox"}
    assert on_disk == set(APPS)
