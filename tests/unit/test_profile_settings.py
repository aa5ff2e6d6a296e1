"""The profile sets safe defaults in production; each setting still overrides it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from uvm_reporting.settings import Settings


def test_development_is_the_default_and_keeps_everything_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.profile == "development"
    assert settings.introspection_enabled
    assert settings.explorer_enabled
    assert settings.keys_generated_at_start
    assert not settings.https_required
    assert settings.profile_summary().startswith("profile development: GraphQL introspection on")


def test_production_turns_off_introspection_explorer_and_generated_keys(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, profile="production", public_url="https://reports.example.com")
    assert not settings.introspection_enabled
    assert not settings.explorer_enabled
    assert not settings.keys_generated_at_start
    assert settings.https_required


def test_production_requires_an_https_public_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="UVM_REPORTING_PUBLIC_URL=https://"):
        Settings(data_dir=tmp_path, profile="production", public_url="http://reports.example.com")
    relaxed = Settings(
        data_dir=tmp_path, profile="production", public_url="http://reports.example.com", require_https=False
    )
    assert relaxed.public_url == "http://reports.example.com"


def test_each_setting_overrides_the_profile(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        profile="production",
        public_url="https://reports.example.com",
        graphql_introspection=True,
        graphql_explorer=True,
        generate_keys=True,
    )
    assert settings.introspection_enabled
    assert settings.explorer_enabled
    assert settings.keys_generated_at_start
    development = Settings(
        data_dir=tmp_path, graphql_introspection=False, require_https=True, public_url="https://x.example.com"
    )
    assert not development.introspection_enabled
    assert development.https_required
