"""The synthetic data generator: deterministic, realistic, and consistent row by row."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String

from uvm_reporting.database import tables
from uvm_reporting.domain.catalog import ASSET_TYPES, CRITICALITIES, FINDING_STATUSES, SEVERITIES
from uvm_reporting.platform_data.generator import (
    AWKWARD_TITLES,
    DEFAULT_NOW,
    Row,
    asset_count_for,
    iter_assets,
    iter_findings,
)

SAMPLE = 20_000
CVE = re.compile(r"CVE-(\d{4})-\d{4,5}")
CWE = re.compile(r"CWE-\d+")
EMAIL = re.compile(r"[a-z]+\.[a-z]+@example\.com")
CVSS_BANDS = {"Critical": (9.0, 10.0), "High": (7.0, 8.9), "Medium": (4.0, 6.9), "Low": (0.1, 3.9)}
SLA_DAYS = {"Critical": 7, "High": 30, "Medium": 90, "Low": 180}


@pytest.fixture(scope="module")
def findings() -> list[Row]:
    return list(iter_findings(SAMPLE, asset_count=asset_count_for(SAMPLE), seed=7))


@pytest.fixture(scope="module")
def assets() -> list[Row]:
    return list(iter_assets(asset_count_for(SAMPLE), seed=7))


def shares(rows: list[Row], field: str) -> dict[str, float]:
    counts = Counter(row[field] for row in rows)
    return {value: count / len(rows) for value, count in counts.items()}


def test_the_same_seed_gives_identical_rows() -> None:
    assert list(iter_findings(500, asset_count=60, seed=3)) == list(iter_findings(500, asset_count=60, seed=3))
    assert list(iter_assets(60, seed=3)) == list(iter_assets(60, seed=3))


def test_a_different_seed_gives_different_rows() -> None:
    first = list(iter_findings(200, asset_count=25, seed=1))
    second = list(iter_findings(200, asset_count=25, seed=2))
    assert [row["id"] for row in first] == [row["id"] for row in second]
    assert sum(a != b for a, b in zip(first, second, strict=True)) > 190
    assert list(iter_assets(25, seed=1)) != list(iter_assets(25, seed=2))


def test_timestamps_count_back_from_a_fixed_anchor_unless_now_is_given() -> None:
    default = next(iter_findings(1, asset_count=1))
    assert default["last_seen"] <= DEFAULT_NOW
    later = datetime(2030, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    shifted = next(iter_findings(1, asset_count=1, now=later))
    # Same choices, only moved in time (and whole seconds, as the store keeps them).
    assert shifted["first_seen"] - default["first_seen"] == later.replace(microsecond=0) - DEFAULT_NOW
    assert shifted["title"] == default["title"]


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="time-zone aware"):
        next(iter_assets(1, now=datetime(2026, 1, 1)))


def test_ids_are_sequential_and_findings_point_at_generated_assets(findings: list[Row], assets: list[Row]) -> None:
    assert [row["id"] for row in findings[:3]] == ["finding-0000001", "finding-0000002", "finding-0000003"]
    assert findings[-1]["id"] == f"finding-{SAMPLE:07d}"
    assert len({row["id"] for row in findings}) == SAMPLE
    asset_ids = [row["id"] for row in assets]
    assert asset_ids[:2] == ["asset-000001", "asset-000002"]
    assert {row["asset_id"] for row in findings} <= set(asset_ids)
    # Spread over most assets, not piled on a few.
    assert len({row["asset_id"] for row in findings}) > 0.9 * len(asset_ids)


@pytest.mark.parametrize(("findings_count", "assets_count"), [(1, 1), (8, 1), (12, 2), (1000, 125)])
def test_about_one_asset_per_eight_findings(findings_count: int, assets_count: int) -> None:
    assert asset_count_for(findings_count) == assets_count


def test_severities_and_statuses_have_a_realistic_mix(findings: list[Row]) -> None:
    severity = shares(findings, "severity")
    expected = {"Critical": 0.05, "High": 0.20, "Medium": 0.40, "Low": 0.25, "Info": 0.10}
    assert set(severity) == set(SEVERITIES)
    for name, share in expected.items():
        assert share - 0.02 < severity[name] < share + 0.02, name
    status = shares(findings, "status")
    assert set(status) == set(FINDING_STATUSES)
    assert all(share > 0.05 for share in status.values())
    assert len({row["source"] for row in findings}) >= 6
    assert len({row["cwe"] for row in findings}) >= 15


def test_cvss_scores_match_the_severity_band_on_every_row(findings: list[Row]) -> None:
    for row in findings:
        score = row["cvss_score"]
        if row["severity"] == "Info":
            assert score in (0.0, None), row
            continue
        low, high = CVSS_BANDS[row["severity"]]
        assert low <= score <= high, row
        assert round(score, 1) == score, row


def test_cve_and_cwe_ids_look_real(findings: list[Row]) -> None:
    with_cve = [row for row in findings if row["cve"] is not None]
    assert len(with_cve) > SAMPLE // 2
    for row in with_cve:
        match = CVE.fullmatch(row["cve"])
        assert match, row["cve"]
        assert 2014 <= int(match.group(1)) <= row["first_seen"].year
        assert row["severity"] != "Info"
    assert all(row["cwe"] is None or CWE.fullmatch(row["cwe"]) for row in findings)
    xss = next(row for row in findings if row["cwe"] == "CWE-79")
    assert "cross-site scripting" in xss["title"].lower() or xss["title"] in AWKWARD_TITLES


def test_awkward_titles_appear_early_and_a_few_percent_overall(findings: list[Row]) -> None:
    first_titles = [row["title"] for row in findings[:20]]
    for fragment in (",", '"', "Überlauf", "日本語", "naïve", "\r\n"):
        assert any(fragment in title for title in first_titles), fragment
    assert any("\n" in title and "\r\n" not in title for title in first_titles)
    rate = sum(row["title"] in AWKWARD_TITLES for row in findings) / SAMPLE
    assert 0.01 < rate < 0.06


def test_finding_timestamps_are_ordered_and_resolved_at_only_on_resolved(findings: list[Row]) -> None:
    for row in findings:
        first_seen, last_seen, resolved_at = row["first_seen"], row["last_seen"], row["resolved_at"]
        assert first_seen.tzinfo is UTC
        assert first_seen.microsecond == 0
        assert first_seen <= last_seen <= DEFAULT_NOW, row
        if row["status"] == "Resolved":
            assert resolved_at is not None, row
            assert first_seen < resolved_at <= DEFAULT_NOW, row
            assert last_seen <= resolved_at, row
        else:
            assert resolved_at is None, row


def test_due_dates_follow_the_severity_sla(findings: list[Row]) -> None:
    for row in findings:
        sla = SLA_DAYS.get(row["severity"])
        expected = None if sla is None else (row["first_seen"] + timedelta(days=sla)).date()
        assert row["due_date"] == expected, row


def test_assets_have_plausible_values(assets: list[Row]) -> None:
    assert {row["type"] for row in assets} == set(ASSET_TYPES)
    assert {row["criticality"] for row in assets} == set(CRITICALITIES)
    versions = Counter(None if row["ip"] is None else ipaddress.ip_address(row["ip"]).version for row in assets)
    assert versions[4] > versions[6] > 0
    assert versions[None] > 0
    for row in assets:
        assert row["hostname"], row
        assert row["os"], row
        assert EMAIL.fullmatch(row["owner"]), row
        assert row["business_unit"], row
        assert row["first_seen"] <= row["last_seen"] <= DEFAULT_NOW, row
    assert len({row["hostname"] for row in assets}) > 0.95 * len(assets)


def test_every_value_fits_its_column(findings: list[Row], assets: list[Row]) -> None:
    # SQLite ignores VARCHAR lengths; PostgreSQL would reject a longer value.
    for table, rows in ((tables.findings, findings), (tables.assets, assets)):
        limits = {
            column.name: column.type.length
            for column in table.columns
            if isinstance(column.type, String) and column.type.length is not None
        }
        assert set(rows[0]) == {column.name for column in table.columns} - {"account_id"}
        for name, limit in limits.items():
            if name == "account_id":
                continue
            longest = max(len(row[name] or "") for row in rows)
            assert longest <= limit, (table.name, name)
