"""Shared set-up for interop-keras' tests."""

from __future__ import annotations

import os

import pytest

from interop.testing.zoo import skip_extended_unless_asked

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``extended`` run only under INTEROP_EXTENDED=1 (``make test-extended``)."""
    skip_extended_unless_asked(items)
