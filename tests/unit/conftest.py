"""Unit tests touch no database: ``settings`` here has a data folder and no database of its own, and
asking for ``database_url`` (so ``engine``, ``account``...) fails. Such a test is an integration test."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvm_reporting.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", public_url="http://127.0.0.1:8000", region="us01")


@pytest.fixture
def database_url() -> str:
    pytest.fail("a unit test touches no database: this one belongs in tests/integration")
