"""A plain install (no `local` extra) is a code location and an API for a real ClickHouse: neither
imports chDB, moto or the local stack."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cost_pipelines.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("cost_pipelines", "cost_api")
LOCAL_ONLY = ("chdb", "moto", "cost_local")
# What the `local` extra adds to the lock; a plain install has none of it.
LOCAL_DISTRIBUTIONS = re.compile(r"^(chdb|chdb-core|moto)==", re.IGNORECASE)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_product_module_imports_chdb_moto_or_the_local_stack() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & set(LOCAL_ONLY))
        for package in PRODUCT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_plain_install_depends_on_neither_chdb_nor_moto() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[\[=<>!~ ]", dep)[0].lower() for dep in project["dependencies"]]
    assert "chdb" not in names and "moto" not in names
    local = [
        re.split(r"[\[=<>!~ ]", dep)[0].lower() for dep in project["optional-dependencies"]["local"]
    ]
    assert {"chdb", "moto"} <= set(local)


@pytest.mark.slow
def test_a_venv_without_the_local_extra_loads_the_code_location_and_the_api(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    lock = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if not LOCAL_DISTRIBUTIONS.match(line)
    ]
    requirements = tmp_path / "requirements-core.txt"
    requirements.write_text("\n".join(lock) + "\n")
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "-r", str(requirements)], check=True, timeout=900)
    # Only the two product packages on the path: the local stack is not there to import.
    source = tmp_path / "src"
    for package in PRODUCT_PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    probe = (
        "import importlib.util, sys\n"
        f"for name in {LOCAL_ONLY!r}:\n"
        "    assert importlib.util.find_spec(name) is None, name + ' is installed'\n"
        "import cost_pipelines.definitions as d, cost_api.main as m\n"
        "keys = d.defs.resolve_asset_graph().get_all_asset_keys()\n"
        "print(sorted(k.to_user_string() for k in keys))\n"
        "print(len(m.create_app().openapi()['paths']))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(source),
        "CUSTOMERS_FILE": str(ROOT / "config" / "customers.example.yaml"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    (tmp_path / "dagster").mkdir()
    result = subprocess.run(
        [str(python), "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assets, paths = result.stdout.splitlines()
    # The same assets as the full install (this process) has: none depends on the local stack.
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert assets == str(sorted(k.to_user_string() for k in keys))
    assert "'aws_costs'" in assets and "'cost_recommendations'" in assets
    assert int(paths) > 10
