"""Real peers for the collection tests: moto's AWS server emptied for each test and the local
AWS-protocol peer in front of it. The warehouse, moto's server and the per-test database come
from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cost_local.sandbox.aws import reset_moto
from tests.support.aws_peer import AwsPeer, serve_aws_peer


@pytest.fixture
def moto(moto_url: str) -> str:
    """moto's server, emptied: no queued Cost Explorer answers, no buckets."""
    reset_moto(moto_url)
    return moto_url


@pytest.fixture
def aws_peer(moto: str) -> Iterator[AwsPeer]:
    with serve_aws_peer(moto) as peer:
        yield peer
