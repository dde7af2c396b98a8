"""One log format for every process (the API, the code location and its runs, `make run`): a JSON
object a line when stderr is not a terminal (what log collectors read), readable lines on one.

Records stay plain `logging` records; structlog's ProcessorFormatter renders them. Each carries
`timestamp`, `level`, `logger`, `event` (the message) and, where they apply, `customer_id`,
`provider` and `run_id`: bound for a block of work with `log_context` (the API's requests, a
collection run) or read from a Dagster record's run and tags (DAGSTER_PYTHON_LOGS). Every
record is scrubbed of secrets (cost_pipelines.redaction) before it is written, whatever its
format.

Settings (environment): LOG_FORMAT `auto` (default: JSON unless stderr is a terminal), `json` or
`text`; LOG_LEVEL (default INFO)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from cost_pipelines.providers import PROVIDERS
from cost_pipelines.redaction import Redactor, env_names_in_customers_file

LogFormat = Literal["json", "text"]
FORMATS = ("auto", "json", "text")
# Dagster's run tags (schedule and API runs set customer_id and provider; every partitioned asset
# of this code location is partitioned per customer, so a backfill's partition is the customer).
_CUSTOMER_TAGS = ("customer_id", "dagster/partition")
_PROVIDER_TAG = "provider"
# Attributes of a Dagster record (its metadata, event objects) and of uvicorn's (a colored copy of
# the message) that are no log fields: the useful parts are read out, the rest dropped.
# `message` and `asctime` are what another formatter (a test runner's) already put on the record.
_DROPPED_EXTRAS = (
    "dagster_meta",
    "dagster_event",
    "dagster_event_batch_metadata",
    "color_message",
    "message",
    "asctime",
)
# Libraries that log routine steps at INFO (every HTTP request made, each storage migration
# Dagster checks at start): at DEBUG only (LOG_LEVEL=DEBUG).
_CHATTY = ("httpx", "httpcore", "alembic")


def log_format(environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> LogFormat:
    """The format LOG_FORMAT asks for; `auto` is JSON unless `stream` (stderr) is a terminal."""
    raw = (environ if environ is not None else os.environ).get("LOG_FORMAT", "auto").lower()
    if raw not in FORMATS:
        raise ValueError(f"LOG_FORMAT={raw!r} is not one of {', '.join(FORMATS)}")
    if raw == "auto":
        target = stream or sys.stderr
        return "text" if target.isatty() else "json"
    return "json" if raw == "json" else "text"


def log_level(environ: Mapping[str, str] | None = None) -> int:
    """LOG_LEVEL as a logging level (a name such as INFO or DEBUG); INFO when unset."""
    raw = (environ if environ is not None else os.environ).get("LOG_LEVEL", "INFO").upper()
    level = logging.getLevelName(raw)
    if not isinstance(level, int):
        raise ValueError(f"LOG_LEVEL={raw!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
    return level


class _LiveRedactor:
    """The secrets of the environment and of the customers file as it is now: the file may start
    naming another credential's variable while the process runs (it is re-read when it changes)."""

    def __init__(self) -> None:
        self._stamp: tuple[str, int, int] | None = None
        self._redactor = Redactor.from_environment()

    def __call__(self, text: str) -> str:
        path = os.environ.get("CUSTOMERS_FILE")
        if path:
            try:
                stat = Path(path).stat()
            except OSError:
                pass  # unreadable now: the last known secrets and the shape patterns still apply
            else:
                stamp = (path, stat.st_mtime_ns, stat.st_size)
                if stamp != self._stamp:
                    names = env_names_in_customers_file(Path(path))
                    self._redactor = Redactor.from_environment(names)
                    self._stamp = stamp
        return self._redactor(text)


_redact = _LiveRedactor()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, Mapping):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


_FIRST = ("timestamp", "level", "logger", "event")


def _redacted(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Every text of the record (message, fields, traceback) without secrets; the fields every
    record has first, in a fixed order."""
    ordered = {key: event_dict[key] for key in _FIRST if key in event_dict}
    ordered.update(event_dict)
    return {key: _scrub(value) for key, value in ordered.items()}


def _timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """When the record was made (not when it was formatted), in UTC."""
    record = event_dict.get("_record")
    created = record.created if record is not None else datetime.now(UTC).timestamp()
    moment = datetime.fromtimestamp(created, UTC)
    event_dict["timestamp"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _dagster_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A Dagster record's run id, customer and provider (its tags, else the step's asset) and its
    own message (not Dagster's compound `job - run id - step - message` line)."""
    record = event_dict.get("_record")
    meta = getattr(record, "dagster_meta", None)
    for name in _DROPPED_EXTRAS:
        event_dict.pop(name, None)
    if not isinstance(meta, Mapping):
        return event_dict
    event_dict["event"] = meta.get("orig_message") or event_dict.get("event")
    tags: Mapping[str, str] = meta.get("job_tags") or {}
    fields = {
        "run_id": meta.get("run_id"),
        "job": meta.get("job_name"),
        "step": meta.get("step_key"),
        "customer_id": next((tags[t] for t in _CUSTOMER_TAGS if tags.get(t)), None),
        "provider": tags.get(_PROVIDER_TAG) or _provider_of_step(meta.get("step_key")),
    }
    event = meta.get("dagster_event")
    if event is not None:
        fields["dagster_event"] = getattr(event, "event_type_value", None)
    for key, value in fields.items():
        if value:
            event_dict.setdefault(key, value)
    return event_dict


def _provider_of_step(step_key: str | None) -> str | None:
    provider = (step_key or "").removesuffix("_costs")
    return provider if provider in PROVIDERS else None


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of every handler we install: JSON lines, or readable key=value lines."""
    pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _dagster_fields,
        _timestamp,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redacted,
            renderer,
        ],
    )


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (not the stream of the moment it was
    made: test runners and daemons replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass  # always the current sys.stderr


def stderr_handler(environ: Mapping[str, str] | None = None) -> logging.Handler:
    handler = StderrHandler()
    handler.setFormatter(formatter(log_format(environ)))
    return handler


def dagster_handler() -> logging.Handler:
    """The handler dagster.yaml gives every run (DAGSTER_PYTHON_LOGS): the run's records, its
    context.log messages and Dagster's events, at LOG_LEVEL in LOG_FORMAT with run id and tags.
    On a terminal with LOG_FORMAT auto it writes nothing: Dagster's own colored console copy of
    the same records is there already."""
    automatic = os.environ.get("LOG_FORMAT", "auto").lower() == "auto"
    if automatic and sys.stderr.isatty():
        return logging.NullHandler()
    handler = stderr_handler()
    handler.setLevel(log_level())
    return handler


# dagster.yaml's `python_logs`: Dagster hands each record of a run to these handlers as well as
# to its event log (what the UI shows stays there) and to its own colored console copy.
DAGSTER_PYTHON_LOGS: dict[str, Any] = {
    "dagster_handler_config": {
        "handlers": {"cost_pipelines": {"()": "cost_pipelines.logs.dagster_handler"}}
    }
}


def configure_logging(takeover: tuple[str, ...] = ()) -> None:
    """Every record of this process through one stderr handler in LOG_FORMAT at LOG_LEVEL. Loggers
    in `takeover` (a server's own, such as uvicorn's) lose their handlers and propagate to it.
    Calling it again replaces the handler it installed, never one somebody else did."""
    handler = stderr_handler()
    handler.set_name("cost_pipelines.logs")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "cost_pipelines.logs"]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = log_level()
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            level if level <= logging.DEBUG else max(level, logging.WARNING)
        )
    for name in takeover:
        taken = logging.getLogger(name)
        taken.handlers.clear()
        taken.propagate = True


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Records made inside the block (on this thread or task) carry these fields."""
    with structlog.contextvars.bound_contextvars(
        **{key: value for key, value in fields.items() if value}
    ):
        yield


def bind_log_context(**fields: str | None) -> None:
    """Add fields to the current block's records (e.g. the API key's name once it is known)."""
    structlog.contextvars.bind_contextvars(**{key: value for key, value in fields.items() if value})


def current_log_context() -> dict[str, Any]:
    return structlog.contextvars.get_contextvars()
