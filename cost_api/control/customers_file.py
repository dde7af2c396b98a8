"""The customers file as the API reads it: re-read only when it changes on disk."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cost_api.errors import ServiceUnavailable
from cost_pipelines.customers import CustomerBook, load_customers
from cost_pipelines.redaction import Redactor, env_names_in_customers_file


class CustomersFile:
    """The customers file (CUSTOMERS_FILE) and the secrets it points at, kept current."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._book = CustomerBook(path)
        self._redactor = Redactor.from_environment()

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ServiceUnavailable(
                "customers file", f"cannot read {self.path}: {exc.strerror}", 503
            ) from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._book = load_customers(self.path)
            self._redactor = Redactor.from_environment(env_names_in_customers_file(self.path))
            self._stamp = stamp

    def book(self) -> CustomerBook:
        self._refresh()
        return self._book

    def redact(self, text: str) -> str:
        """Scrub a text with the secrets of the customers file as it is now."""
        # Unreadable now: the last known secrets and the shape patterns still apply.
        with contextlib.suppress(ServiceUnavailable):
            self._refresh()
        return self._redactor(text)
