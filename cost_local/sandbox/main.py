"""`cost-sandbox`: every provider simulated on 127.0.0.1 from one generated year of bills, plus
the demo customer's customers file, so `make run` collects real-looking costs with no cloud.

AWS is moto's server (Cost Explorer answers queued through `/moto-api/`); Azure, GCP (BigQuery)
and Vultr are this package's simulators, and so are the ECB's reference rates files. Ports:
SANDBOX_AWS_PORT (5050), SANDBOX_AZURE_PORT (5051), SANDBOX_GCP_PORT (5052), SANDBOX_VULTR_PORT
(5053), SANDBOX_ECB_PORT (5054); Cost Explorer's purchase recommendations, which moto lacks,
on SANDBOX_AWS_CE_PORT or a free port (its URL is in sandbox.env). Writes $DATA_DIR/sandbox.env
(the demo credentials and EXCHANGE_RATES_URL, mode 0600) and then $DATA_DIR/customers.yaml.
Stops on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType

from moto.server import ThreadedMotoServer

from cost_local.sandbox import demo
from cost_local.sandbox.aws import reset_moto, seed_cost_explorer
from cost_local.sandbox.aws_ce import CostExplorerRecommendations
from cost_local.sandbox.azure import AzureCostManagement
from cost_local.sandbox.bills import GeneratedLine, generate_bills
from cost_local.sandbox.ecb import EcbReferenceRates
from cost_local.sandbox.gcp import BigQueryBilling
from cost_local.sandbox.simulator import Simulator
from cost_local.sandbox.vultr import VultrBilling
from cost_pipelines.assets.collection import trailing_window
from cost_pipelines.customers import AwsConfig
from cost_pipelines.resources.ecb import URL_ENV

PORTS = {"aws": 5050, "azure": 5051, "gcp": 5052, "vultr": 5053, "ecb": 5054}
HISTORY_DAYS = 400  # a year and a bit: enough for any window a run may ask for
REFRESH_S = 30.0
SEED = 7
# The demo's spike is this many days before today: inside every provider's trailing window, so
# the first collections of `make run` store it and `cost_anomalies` finds it.
SPIKE_DAYS_AGO = 3
log = logging.getLogger("cost-sandbox")


class SandboxError(RuntimeError):
    """The sandbox cannot start; the message says why and what to do."""


def _port(provider: str) -> int:
    name = f"SANDBOX_{provider.upper()}_PORT"
    raw = os.environ.get(name, str(PORTS[provider]))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SandboxError(f"{name}={raw!r} is not a TCP port number")
    port = int(raw)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(
                f"port {port} ({name}) on 127.0.0.1 is already in use: stop what holds it "
                f"(an earlier cost-sandbox?) or set {name} to another port"
            ) from None
    return port


def _optional_port(name: str) -> int:
    """SANDBOX_<NAME>_PORT if set (checked like the others), else any free port."""
    variable = f"SANDBOX_{name.upper()}_PORT"
    if variable not in os.environ:
        return 0
    PORTS.setdefault(name, 0)
    return _port(name)


def bills_until(today: date) -> list[GeneratedLine]:
    """The demo customer's bills up to and including today (today's so far), each account
    spiking SPIKE_DAYS_AGO days ago."""
    start = today - timedelta(days=HISTORY_DAYS)
    return generate_bills(
        list(demo.accounts().values()),
        start,
        today + timedelta(days=1),
        seed=SEED,
        spike_on=today - timedelta(days=SPIKE_DAYS_AGO),
        waste=True,
    )


class Sandbox:
    """The four simulators and the daily refresh of what they report."""

    def __init__(self, data_dir: Path, ports: dict[str, int]) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.stopping = threading.Event()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=ports["aws"], verbose=False)
        self.today = datetime.now(UTC).date()
        self.aws_window: tuple[date, date] | None = None
        self._lines: list[GeneratedLine] = []
        self.secrets = demo.new_secrets(f"http://127.0.0.1:{ports['gcp']}/token")
        self.azure = AzureCostManagement([self.secrets.azure_app], port=ports["azure"])
        self.gcp = BigQueryBilling([self.secrets.gcp_key], [demo.gcp_export()], port=ports["gcp"])
        vultr_account = demo.accounts()["vultr"].billing_account_id
        self.vultr = VultrBilling({self.secrets.vultr_api_key: vultr_account}, port=ports["vultr"])
        self.ecb = EcbReferenceRates(port=ports["ecb"])
        # Cost Explorer's purchase recommendations (not in moto) on a port of their own.
        self.aws_ce = CostExplorerRecommendations(
            {self.secrets.aws_access_key_id: self.secrets.aws_secret_access_key},
            port=_optional_port("aws_ce"),
        )
        self.simulators: list[Simulator] = [self.azure, self.gcp, self.vultr, self.ecb]

    def start(self) -> dict[str, str]:
        self.moto.start()
        urls = {"aws": f"http://127.0.0.1:{self.ports['aws']}"}
        for name, simulator in zip(("azure", "gcp", "vultr", "ecb"), self.simulators, strict=True):
            urls[name] = simulator.start()
        urls["aws_ce"] = self.aws_ce.start()
        self.refresh(force=True)
        key_file = self.data_dir / "sandbox" / "gcp-service-account.json"
        demo.write_private(key_file, json.dumps(self.secrets.gcp_key, indent=2))
        variables = demo.environment(urls, self.secrets, key_file)
        variables[URL_ENV] = self.ecb.url  # the exchange_rates asset reads the sandbox's rates
        demo.write_environment_file(self.data_dir / demo.ENV_FILE_NAME, variables)
        demo.write_customers_file(self.data_dir / "customers.yaml")  # last: it means "ready"
        return urls

    def refresh(self, *, force: bool = False) -> None:
        """New bills when the day changes; Cost Explorer answers for today's collection window."""
        today = datetime.now(UTC).date()
        if force or today != self.today:
            self.today = today
            lines = bills_until(today)
            self.vultr.today = today
            for simulator in (self.gcp, self.vultr):
                simulator.set_lines(lines)
            self.azure.set_lines(lines, today)
            self.aws_ce.set_lines(lines, today)
            self._lines = lines
        aws = AwsConfig(billing_account_id=demo.accounts()["aws"].billing_account_id)
        window = trailing_window(today, aws)
        if (window.start, window.end) != self.aws_window:
            # moto hands queued answers to new request bodies in order: start from an empty
            # queue so yesterday's unused answers cannot reach today's requests.
            url = f"http://127.0.0.1:{self.ports['aws']}"
            reset_moto(url)
            count = seed_cost_explorer(
                url, self._lines, window.start, window.end, estimated_from=today.replace(day=1)
            )
            self.aws_window = (window.start, window.end)
            log.info("queued %d Cost Explorer answers for [%s, %s)", count, *self.aws_window)

    def run(self) -> None:
        while not self.stopping.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # keep serving; the next refresh tries again
                log.exception("refresh failed")

    def stop(self) -> None:
        self.stopping.set()
        for simulator in (*self.simulators, self.aws_ce):
            simulator.stop()
        self.moto.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="cost-sandbox: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    data_dir = Path(os.environ.get("DATA_DIR", ".data")).resolve()
    try:
        ports = {provider: _port(provider) for provider in PORTS}
        sandbox = Sandbox(data_dir, ports)
        urls = sandbox.start()
    except SandboxError as exc:
        print(f"cost-sandbox: {exc}", file=sys.stderr)
        return 2

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        sandbox.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        "cost-sandbox: ready: "
        + ", ".join(f"{name} {url}" for name, url in urls.items())
        + f"; customers file {data_dir / 'customers.yaml'}",
        flush=True,
    )
    try:
        sandbox.run()
    finally:
        sandbox.stop()
        print("cost-sandbox: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
