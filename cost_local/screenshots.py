"""`make screenshots`: the README's tour of the Dagster UI, taken by headless Chromium
against a running `make run` (the demo), so the pictures in docs/ show what a newcomer sees.

Chromium is Debian's (`apt-get install chromium`); each page is loaded once with a virtual time
budget long enough for the UI to fetch and lay out its data. Pages that need an id (a run) find it
through Dagster's GraphQL API first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WINDOW = "1600,1000"
BUDGET_MS = 20_000  # virtual time for the UI's requests and layout
TIMEOUT_S = 90.0

_RUNS = """
query TourRuns($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 20) {
    ... on Runs { results { runId status } }
  }
}
"""


@dataclass(frozen=True)
class Shot:
    name: str  # docs/<name>.png
    url: str
    what: str
    window: str = WINDOW  # width,height in CSS pixels


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("screenshots: no Chromium found (Debian: apt-get install chromium)")


def _succeeded_run(dagster: str, asset: str) -> str | None:
    """The newest successful run that materialized `asset` (the run page's example)."""
    answer = httpx.post(
        f"{dagster}/graphql",
        json={"query": _RUNS, "variables": {"filter": {"statuses": ["SUCCESS"]}}},
        timeout=10.0,
    )
    answer.raise_for_status()
    runs = answer.json()["data"]["runsOrError"].get("results", [])
    for run in runs:
        detail = httpx.post(
            f"{dagster}/graphql",
            json={
                "query": "query R($id: ID!) { runOrError(runId: $id) { ... on Run {"
                " assetSelection { path } } } }",
                "variables": {"id": run["runId"]},
            },
            timeout=10.0,
        ).json()
        selection = (detail["data"]["runOrError"] or {}).get("assetSelection") or []
        if any(key["path"] == [asset] for key in selection):
            return str(run["runId"])
    return None


def shots(dagster: str, customer: str) -> list[Shot]:
    location = f"{dagster}/locations/cost_pipelines"
    tour = [
        Shot("lineage-groups", f"{dagster}/asset-groups", "the asset groups and how cost flows"),
        Shot(
            "lineage-costs",
            f"{location}/asset-groups/costs",
            "the provider assets, one partition per customer",
            window="1600,1200",
        ),
        Shot(
            "lineage",
            f"{location}/asset-groups/analytics",
            "the analyses downstream of the provider assets",
            window="1600,1800",
        ),
        Shot("runs", f"{dagster}/runs", "collection runs, scheduled and triggered"),
        Shot("backfills", f"{dagster}/overview/backfills", "the first start's history backfills"),
        Shot("automation", f"{dagster}/automation", "the 15-minute schedule and the sensors"),
        Shot(
            "asset-aws",
            f"{dagster}/assets/aws_costs?partition={customer}",
            "a provider asset: its newest materialization and metadata",
        ),
        Shot(
            "asset-checks",
            f"{dagster}/assets/aws_costs?view=checks",
            "the asset checks of a provider asset",
        ),
    ]
    run = _succeeded_run(dagster, "aws_costs")
    if run:
        tour.append(Shot("run", f"{dagster}/runs/{run}", "one collection run: steps and logs"))
    return tour


def take(shot: Shot, out: Path, browser: str) -> Path:
    target = out / f"{shot.name}.png"
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--window-size={shot.window}",
        f"--virtual-time-budget={BUDGET_MS}",
        f"--screenshot={target}",
        shot.url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0 or not target.exists():
        raise SystemExit(f"screenshots: {shot.url} failed: {done.stderr.strip()[-500:]}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    port = os.environ.get("DAGSTER_PORT", "3000")
    parser.add_argument("--dagster", default=f"http://127.0.0.1:{port}")
    parser.add_argument("--customer", default="demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", action="append", help="take only these shots (by name)")
    args = parser.parse_args(argv)
    browser = _browser()
    try:
        tour = shots(args.dagster, args.customer)
    except httpx.HTTPError as error:
        raise SystemExit(
            f"screenshots: Dagster at {args.dagster} did not answer ({error}); "
            "start the stack with `make run` first"
        ) from error
    args.out.mkdir(parents=True, exist_ok=True)
    for shot in tour:
        if args.only and shot.name not in args.only:
            continue
        path = take(shot, args.out, browser)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {shot.what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
