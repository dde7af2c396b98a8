"""`cost-keys`: add, list and revoke the API's keys (only hashes are stored; a new key's token is
printed once). The API picks changes up without a restart."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cost_api.auth import ALL_CUSTOMERS, add_key, read_keys, revoke_key
from cost_pipelines.customers import CUSTOMER_ID, CUSTOMER_ID_RULE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cost-keys", description=__doc__)
    parser.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ.get("API_KEYS_FILE", ".data/api_keys.yaml")),
        help="the keys file (default: API_KEYS_FILE, else .data/api_keys.yaml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a key and print its token once")
    add.add_argument("name", help="who holds it (shown in requested_by of its triggers)")
    add.add_argument(
        "--customer",
        action="append",
        required=True,
        help=f"a customer it may read (repeat for more; {ALL_CUSTOMERS!r} for all)",
    )
    add.add_argument("--expires-in-days", type=int, help="the key stops working after N days")
    commands.add_parser("list", help="every key: name, customers, expiry (never a token)")
    revoke = commands.add_parser("revoke", help="remove every key of this name")
    revoke.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.file
    if args.command == "add":
        bad = [c for c in args.customer if c != ALL_CUSTOMERS and not CUSTOMER_ID.match(c)]
        if bad:
            print(f"cost-keys: customer {bad[0]!r}: {CUSTOMER_ID_RULE}", file=sys.stderr)
            return 2
        expires = None
        if args.expires_in_days is not None:
            if args.expires_in_days < 1:
                print("cost-keys: --expires-in-days must be at least 1", file=sys.stderr)
                return 2
            expires = datetime.now(UTC).replace(microsecond=0) + timedelta(
                days=args.expires_in_days
            )
        token = add_key(path, args.name, args.customer, expires)
        print(token)
        return 0
    if args.command == "list":
        now = datetime.now(UTC)
        for key in read_keys(path):
            until = key.expires.isoformat() if key.expires else "never"
            state = " (expired)" if key.expired(now) else ""
            print(
                f"{key.name}\tcustomers={','.join(sorted(key.customers))}\texpires={until}{state}"
            )
        return 0
    removed = revoke_key(path, args.name)
    if not removed:
        print(f"cost-keys: no key named {args.name!r} in {path}", file=sys.stderr)
        return 1
    print(f"revoked {removed} key{'s' if removed != 1 else ''} named {args.name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
