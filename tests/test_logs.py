"""Which log format a process chooses (LOG_FORMAT) and how each one reads."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from cost_pipelines.logs import formatter, log_format, log_level


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """A real pseudo-terminal, as stderr is when someone runs `make run` by hand."""
    leader, follower = os.openpty()
    with open(follower, "w") as stream, open(leader, "rb"):
        yield stream


def test_auto_is_text_on_a_terminal_and_json_anywhere_else(terminal: io.TextIOWrapper) -> None:
    read, write = os.pipe()
    with open(read, "rb"), open(write, "w") as pipe:
        assert log_format({}, pipe) == "json"
        assert log_format({"LOG_FORMAT": "auto"}, pipe) == "json"
    assert log_format({}, terminal) == "text"
    assert log_format({"LOG_FORMAT": "JSON"}, terminal) == "json"
    assert log_format({"LOG_FORMAT": "text"}, io.StringIO()) == "text"


def test_a_bad_setting_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT='xml'"):
        log_format({"LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="LOG_LEVEL='LOUD'"):
        log_level({"LOG_LEVEL": "loud"})
    assert log_level({}) == logging.INFO
    assert log_level({"LOG_LEVEL": "debug"}) == logging.DEBUG


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("cost_api.requests", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_json_is_one_object_a_line_and_text_reads_as_key_value_pairs() -> None:
    line = formatter("json").format(record("GET /health 200", status=200, route="/health"))
    parsed = json.loads(line)
    assert list(parsed)[:4] == ["timestamp", "level", "logger", "event"]
    assert (parsed["event"], parsed["status"], parsed["route"]) == (
        "GET /health 200",
        200,
        "/health",
    )
    assert parsed["timestamp"].endswith("Z")

    text = formatter("text").format(record("GET /health 200", status=200))
    assert "\n" not in text and "GET /health 200" in text and "status=200" in text
