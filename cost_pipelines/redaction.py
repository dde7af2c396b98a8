"""Scrubs secrets out of texts before anyone else sees them: what Dagster recorded (error
messages) before the API returns it, and every log record of every process (cost_pipelines.logs)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

MASK = "[redacted]"
MIN_SECRET_LENGTH = 6
# Env var names that by convention hold secrets, whatever file names them.
_SECRET_ENV_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_?KEY|ACCESS_KEY|CREDENTIAL", re.I)
_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),  # Authorization headers
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    re.compile(r"\bcpk_[A-Za-z0-9_\-]{16,}"),  # the cost API's own keys (cost_api.auth.new_token)
    # AWS secret access keys: 40 base64 characters, mixed case (so hex digests stay readable).
    re.compile(
        r"(?<![A-Za-z0-9/+])(?=[a-z0-9/+]*[A-Z])(?=[A-Z0-9/+]*[a-z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
    ),
    re.compile(
        r"(?i)\b(password|passwd|secret|token|api[_-]?key|access[_-]?key|signature)"
        r"(\"?\s*[=:]\s*\"?)[^\s\"',;&]{4,}"
    ),
    re.compile(r"(?i)(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in URLs
)
# Names in the customers file that hold an env var NAME whose value is not a secret.
_NOT_SECRET_ENV_KEYS = {"endpoint_url_env"}


def env_names_in_customers_file(path: Path) -> set[str]:
    """Env var names the customers file points credentials at (`*_env` keys, `credentials:`)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return set()
    return set(_credential_env_names(document, in_credentials=False))


def _credential_env_names(node: Any, in_credentials: bool) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            key = str(key)
            if isinstance(value, str):
                named_env = key.endswith("_env") and key not in _NOT_SECRET_ENV_KEYS
                if in_credentials or named_env:
                    yield value
            else:
                yield from _credential_env_names(value, in_credentials or key == "credentials")
    elif isinstance(node, list):
        for item in node:
            yield from _credential_env_names(item, in_credentials)


class Redactor:
    """Masks known secret values (by env var) and anything shaped like a credential."""

    def __init__(self, secret_values: Iterable[str]) -> None:
        values = {v for v in secret_values if len(v) >= MIN_SECRET_LENGTH}
        # Longest first: a secret that contains another is masked whole.
        self._values = sorted(values, key=len, reverse=True)

    @classmethod
    def from_environment(cls, env_names: Iterable[str] = ()) -> Redactor:
        """Values of the given env vars plus every env var whose name says it holds a secret."""
        names = set(env_names) | {name for name in os.environ if _SECRET_ENV_NAME.search(name)}
        return cls(os.environ[name] for name in names if os.environ.get(name))

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(_mask_match, text)
        return text


def _mask_match(match: re.Match[str]) -> str:
    # Keep the label ("Bearer", "password=") so the reader still understands the message.
    if match.re.groups >= 2:
        return f"{match.group(1)}{match.group(2)}{MASK}"
    if match.re.groups == 1:
        return f"{match.group(1)} {MASK}"
    return MASK
