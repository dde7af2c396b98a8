"""Customers files for the tests, written as an operator writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_customers(path: Path, customers: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"customers": customers}), encoding="utf-8")
    return path
