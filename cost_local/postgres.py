"""A throw-away PostgreSQL server from Debian's packages, for the tests and the benchmarks: its own
data directory, 127.0.0.1 on a free port, a password, stopped by its postmaster's PID.

`initdb` refuses to run as root, so as root the cluster runs as the `postgres` user the Debian
package creates (the data directory is handed to it). Not for production: production points
Dagster and the benchmarks at a PostgreSQL it already runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SERVICE_USER = "postgres"  # Debian's package creates it


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (Debian: `apt-get install postgresql`)."""


def server_bin_dir() -> Path:
    """The newest installed PostgreSQL's server binaries (Debian: /usr/lib/postgresql/N/bin)."""

    def major(pg_ctl: str) -> int:
        version = Path(pg_ctl).parent.parent.name
        return int(version) if version.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (pg_ctl, initdb) not found: install Debian's `postgresql` "
        "package (`make test` does this itself when run as root)"
    )


@dataclass
class PostgresServer:
    """A running server: connect as `user`/`password` to `database` on 127.0.0.1:`port`."""

    port: int
    user: str
    password: str
    database: str
    data_dir: Path
    pid: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def env(self, prefix: str = "DAGSTER_PG") -> dict[str, str]:
        """The connection as the environment variables config/dagster.postgres.yaml reads."""
        return {
            f"{prefix}_HOST": "127.0.0.1",
            f"{prefix}_PORT": str(self.port),
            f"{prefix}_USER": self.user,
            f"{prefix}_PASSWORD": self.password,
            f"{prefix}_DB": self.database,
        }


def _demote() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError as exc:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def _run(args: list[str], ids: tuple[int, int] | None, **kwargs: object) -> None:
    subprocess.run(
        args,
        check=True,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[call-overload]
    )


def start_postgres(base: Path, port: int, database: str = "dagster") -> PostgresServer:
    """initdb a cluster under `base`, start it on 127.0.0.1:port, create `database`."""
    bin_dir = server_bin_dir()
    ids = _demote()
    base.mkdir(parents=True, exist_ok=True)
    data_dir, socket_dir, log_path = base / "data", base / "socket", base / "postgres.log"
    password = secrets.token_urlsafe(18)
    password_file = base / "pwfile"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    for path in (data_dir, socket_dir):
        path.mkdir(mode=0o700, exist_ok=True)
    log_path.touch(mode=0o600)
    if ids:
        for path in (base, data_dir, socket_dir, password_file, log_path):
            os.chown(path, *ids)
    user = "cost"
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            user,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        ids,
    )
    password_file.unlink()
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log_path),
            "-o",
            options,
            "-w",
            "-t",
            str(int(READY_TIMEOUT_S)),
            "start",
        ],
        ids,
    )
    pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    server = PostgresServer(port, user, password, database, data_dir, pid, log_path)
    try:
        env = {**os.environ, "PGPASSWORD": password}
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            None,
            env=env,
        )
    except BaseException:
        stop_postgres(server)
        raise
    return server


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def stop_postgres(server: PostgresServer, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Fast shutdown by the postmaster's PID (SIGINT), SIGKILL if it outlives timeout_s."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(server.pid):
                return
            time.sleep(0.1)
        os.kill(server.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_postgres(base: Path, port: int, database: str = "dagster") -> Iterator[PostgresServer]:
    server = start_postgres(base, port, database)
    try:
        yield server
    finally:
        stop_postgres(server)
