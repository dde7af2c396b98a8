"""Every fixed SQL text of the cost readers has its point-in-time text: the current line items,
pointers, rates and ledger rows all read as of the bound instant, nothing else changes."""

from __future__ import annotations

from types import ModuleType

import pytest

from cost_api.readers import allocation, completeness, cost_reader, export, restatements
from cost_api.readers.point_in_time import AS_OF, text_as_of


def fixed_texts(module: ModuleType) -> list[str]:
    texts = []
    for value in vars(module).values():
        candidates = value.values() if isinstance(value, dict) else [value]
        texts += [
            text
            for text in candidates
            # Templates still to be formatted ({{name:Type}}) are not texts a read runs.
            if isinstance(text, str) and "SELECT" in text and "{{" not in text
        ]
    return texts


@pytest.mark.parametrize(
    "module",
    [cost_reader, allocation, completeness, export, restatements],
    ids=lambda m: m.__name__,
)
def test_every_read_text_has_a_point_in_time_text(module: ModuleType) -> None:
    texts = fixed_texts(module)
    assert texts
    for text in texts:
        as_of = text_as_of(text)
        assert "costs_current" not in as_of
        if any(name in text for name in ("costs_current", "cost_loads", "exchange_rates")):
            assert AS_OF in as_of
        # Only the sources change: the rest of the text is the same.
        assert as_of.count("{customer_id:String}") == text.count("{customer_id:String}")
