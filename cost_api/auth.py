"""API keys: stored as SHA-256 hashes, each scoped to the customers it may read, optionally
expiring; compared in constant time. `cost-keys` (cost_api.key_admin) adds, lists and revokes."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

ALL_CUSTOMERS = "*"


@dataclass(frozen=True)
class ApiKey:
    """A configured key: who holds it, which customers it may see, until when."""

    name: str
    sha256: str
    customers: frozenset[str]
    expires: datetime | None = None

    def may_read(self, customer_id: str) -> bool:
        return ALL_CUSTOMERS in self.customers or customer_id in self.customers

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(UTC)) >= self.expires


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh high-entropy key; only its hash is ever stored."""
    return "cpk_" + secrets.token_urlsafe(32)


def _expiry(value: object, path: Path, index: int) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{path}: entry {index} has an unreadable expires {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_keys(path: Path) -> list[ApiKey]:
    """The keys file's entries; a malformed file raises ValueError naming the entry."""
    if not path.exists():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of API key entries")
    keys = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "sha256", "customers"} <= entry.keys():
            raise ValueError(f"{path}: entry {i} needs name, sha256 and customers")
        customers = entry["customers"]
        scope = [customers] if isinstance(customers, str) else list(customers)
        expires = _expiry(entry.get("expires"), path, i)
        keys.append(ApiKey(str(entry["name"]), str(entry["sha256"]), frozenset(scope), expires))
    return keys


def write_keys(path: Path, keys: list[ApiKey]) -> None:
    """Replace the keys file (mode 0600, written whole then renamed: never half a file)."""
    entries = []
    for key in keys:
        entry: dict[str, object] = {
            "name": key.name,
            "sha256": key.sha256,
            "customers": sorted(key.customers),
        }
        if key.expires is not None:
            entry["expires"] = key.expires.isoformat()
        entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(yaml.safe_dump(entries, sort_keys=False))
    partial.chmod(0o600)
    os.replace(partial, path)


class KeyRing:
    """The configured keys, re-read when the file changes (a revoked key stops working without a
    restart), looked up in constant time per key."""

    def __init__(self, keys: list[ApiKey], path: Path | None = None) -> None:
        self._keys = keys
        self._path = path
        self._stamp = self._stat()

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(read_keys(path), path)

    def _stat(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp != self._stamp:
            assert self._path is not None
            self._keys = read_keys(self._path)
            self._stamp = stamp

    def authenticate(self, token: str) -> ApiKey | None:
        self._refresh()
        digest = hash_key(token)
        found = None
        for key in self._keys:  # compare against every key: no early exit to time
            if hmac.compare_digest(digest, key.sha256):
                found = key
        if found is None or found.expired():
            return None
        return found


def add_key(path: Path, name: str, customers: list[str], expires: datetime | None = None) -> str:
    """Create a key, store its hash in `path`, and return the token (shown once)."""
    token = new_token()
    keys = read_keys(path)
    keys.append(ApiKey(name, hash_key(token), frozenset(customers), expires))
    write_keys(path, keys)
    return token


def revoke_key(path: Path, name: str) -> int:
    """Remove every key of this name; returns how many were removed."""
    keys = read_keys(path)
    kept = [key for key in keys if key.name != name]
    write_keys(path, kept)
    return len(keys) - len(kept)
