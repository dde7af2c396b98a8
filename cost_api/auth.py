"""API keys: stored as SHA-256 hashes, each scoped to the customers it may read."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

ALL_CUSTOMERS = "*"


@dataclass(frozen=True)
class ApiKey:
    """A configured key: who holds it and which customers it may see."""

    name: str
    sha256: str
    customers: frozenset[str]

    def may_read(self, customer_id: str) -> bool:
        return ALL_CUSTOMERS in self.customers or customer_id in self.customers


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh high-entropy key; only its hash is ever stored."""
    return "cpk_" + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, looked up in constant time per key."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        if not path.exists():
            return cls([])
        entries = yaml.safe_load(path.read_text()) or []
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of API key entries")
        keys = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"name", "sha256", "customers"} <= entry.keys():
                raise ValueError(f"{path}: entry {i} needs name, sha256 and customers")
            customers = entry["customers"]
            scope = [customers] if isinstance(customers, str) else list(customers)
            keys.append(ApiKey(str(entry["name"]), str(entry["sha256"]), frozenset(scope)))
        return cls(keys)

    def authenticate(self, token: str) -> ApiKey | None:
        digest = hash_key(token)
        found = None
        for key in self._keys:  # compare against every key: no early exit to time
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def add_key(path: Path, name: str, customers: list[str]) -> str:
    """Create a key, store its hash in `path`, and return the token (shown once)."""
    token = new_token()
    entries = (yaml.safe_load(path.read_text()) or []) if path.exists() else []
    entries.append({"name": name, "sha256": hash_key(token), "customers": customers})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    path.chmod(0o600)
    return token
