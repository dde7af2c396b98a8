"""The providers we collect from: one word each, spelled here once. The writer, the customers
file, the asset specs, the API's path parameters and its models all take them from here."""

from __future__ import annotations

from typing import Literal, get_args

ProviderKey = Literal["aws", "azure", "gcp", "vultr"]
PROVIDERS: tuple[ProviderKey, ...] = get_args(ProviderKey)
