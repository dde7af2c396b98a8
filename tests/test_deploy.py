"""The deployment files agree with the code they deploy: images built on `pip install .` without
the local stack, the code location module and port, the per-pair run queue, the API's settings
and probe. (No container runtime or cluster runs here; see README, "Scale out".)"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cost_api.main import create_app
from cost_api.settings import ApiSettings
from cost_pipelines.logs import DAGSTER_PYTHON_LOGS, dagster_handler
from cost_pipelines.runs import PAIR_TAG
from cost_pipelines.warehouse.connection import WarehouseSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILES = sorted(DEPLOY.glob("Dockerfile.*"))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def local_distributions() -> set[str]:
    local = PYPROJECT["project"]["optional-dependencies"]["local"]
    return {re.split(r"[\[=<>]", spec, maxsplit=1)[0] for spec in local}


def test_there_is_an_image_for_the_code_location_and_one_for_the_api() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.api", "Dockerfile.code-location"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_an_image_is_pip_install_of_the_project_without_the_local_stack(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    assert steps[0] == ("FROM", "python:3.11-slim")
    copied = [shlex.split(args)[:-1] for word, args in steps if word == "COPY"]
    sources = {source for group in copied for source in group}
    assert all((ROOT / source).exists() for source in sources), sources
    assert "cost_local" not in sources and "tests" not in sources
    runs = " ".join(args for word, args in steps if word == "RUN")
    # The lock pins everything except the local extra's distributions.
    excluded = re.search(r"\^\((?P<names>[^)]*)\)==", runs)
    assert excluded is not None
    assert set(excluded["names"].split("|")) == local_distributions()
    assert re.search(r"pip install --constraint \S+ \"?\.(\[[a-z,]+\])?\"?", runs)
    assert ("USER", "10001") in steps


def code_location_command() -> list[str]:
    steps = instructions(DEPLOY / "Dockerfile.code-location")
    [cmd] = [args for word, args in steps if word == "CMD"]
    parsed: list[str] = yaml.safe_load(cmd)  # the exec form is a JSON array
    return parsed


def helm_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    return values


def test_the_code_location_image_and_the_helm_chart_serve_the_projects_module() -> None:
    module = PYPROJECT["tool"]["dagster"]["module_name"]
    command = code_location_command()
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("--module-name") + 1] == module
    [deployment] = helm_values()["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == module
    assert str(deployment["port"]) == command[command.index("--port") + 1]
    assert helm_values()["runLauncher"]["type"] == "K8sRunLauncher"


def test_every_run_queue_limits_one_run_per_pair() -> None:
    coordinator = helm_values()["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    [helm_limit] = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    instance = yaml.safe_load((DEPLOY / "dagster.postgres.yaml").read_text())
    [instance_limit] = instance["run_coordinator"]["config"]["tag_concurrency_limits"]
    for limit in (helm_limit, instance_limit):
        assert limit == {"key": PAIR_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_every_dagster_instance_hands_run_records_to_the_projects_log_handler() -> None:
    instance = yaml.safe_load((DEPLOY / "dagster.postgres.yaml").read_text())
    assert instance["python_logs"] == DAGSTER_PYTHON_LOGS
    helm = helm_values()["pythonLogs"]["dagsterHandlerConfig"]
    assert helm == DAGSTER_PYTHON_LOGS["dagster_handler_config"]
    [handler] = helm["handlers"].values()
    module, _, name = handler["()"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is dagster_handler


def api_container() -> dict[str, Any]:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "api.yaml").read_text()))
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def test_the_api_deployment_sets_only_settings_the_api_reads() -> None:
    known = {name.upper() for name in ApiSettings.model_fields}
    known |= {name.upper() for name in WarehouseSettings.model_fields}
    known |= {"API_HOST", "API_PORT"}  # cost-api's own (cost_api.main.main)
    names = {variable["name"] for variable in api_container()["env"]}
    assert names <= known, names - known


def test_the_api_readiness_probe_is_a_route_that_needs_no_other_component() -> None:
    path = api_container()["readinessProbe"]["httpGet"]["path"]
    # Without the lifespan nothing else is connected: the probe answers on the API alone.
    assert TestClient(create_app()).get(path).status_code == 200
    assert path != "/health"  # 503 whenever Dagster is down; cost reads need only ClickHouse
