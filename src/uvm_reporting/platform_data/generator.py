"""Synthetic platform data: realistic findings and assets for demos, tests and load runs.

Every row is a pure function of the counts, ``seed`` and ``now``: ``random.Random`` seeded
from ``seed`` drives every choice, and every timestamp is an offset back from ``now``. ``now``
defaults to the fixed anchor :data:`DEFAULT_NOW` (not the wall clock), so the same seed gives identical
rows on every machine and every day; pass ``now`` to make the data look current.

Values follow the catalog: severities mixed roughly Critical 5 %, High 20 %, Medium 40 %,
Low 25 %, Info 10 %; CVSS v3 scores inside their severity's band; real CWE ids with titles
that match them; ``first_seen <= last_seen <= now``; ``resolved_at`` only on Resolved
findings; due dates from a per-severity SLA. A few titles carry commas, double quotes,
non-ASCII text and embedded line breaks (always some within the first 20 findings), so even
a small data set exercises CSV quoting and encoding.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, exists, insert, select

from uvm_reporting.database import tables
from uvm_reporting.database.accounts import get_account
from uvm_reporting.domain.catalog import ASSET_TYPES, CRITICALITIES, FINDING_STATUSES, SEVERITIES
from uvm_reporting.errors import BadUserInput

Row = dict[str, Any]
T = TypeVar("T")

DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
"""The anchor the generated timestamps count back from unless a caller passes ``now``."""

FINDINGS_PER_ASSET = 8
BATCH_SIZE = 5_000

_DAY = 86_400


def _cumulative(weights: Iterable[float]) -> tuple[float, ...]:
    total, running = 0.0, []
    for weight in weights:
        total += weight
        running.append(total)
    return tuple(value / total for value in running)


def _pick(values: tuple[T, ...], cumulative: tuple[float, ...], rnd: float) -> T:
    # bisect over precomputed cumulative weights: much cheaper per row than random.choices.
    return values[min(bisect(cumulative, rnd), len(values) - 1)]


# --- findings vocabulary ---------------------------------------------------------------------

_SEVERITY_CUM = _cumulative((5, 20, 40, 25, 10))  # in SEVERITIES order
_STATUS_CUM = _cumulative((45, 15, 30, 10))  # Open, In Progress, Resolved, Risk Accepted
# CVSS v3 bands in tenths: Critical 9.0-10.0, High 7.0-8.9, Medium 4.0-6.9, Low 0.1-3.9.
_CVSS_TENTHS = {"Critical": (90, 100), "High": (70, 89), "Medium": (40, 69), "Low": (1, 39)}
# Remediation SLA in days from first_seen; Info findings have no due date.
_SLA_DAYS = {"Critical": 7, "High": 30, "Medium": 90, "Low": 180}

_SOURCES = (
    "Qualys VMDR",
    "Tenable Nessus",
    "Rapid7 InsightVM",
    "Wiz",
    "Snyk",
    "CrowdStrike Falcon Spotlight",
    "Microsoft Defender Vulnerability Management",
)

_LIBRARIES = (
    "OpenSSL 3.0.7",
    "glibc 2.35",
    "libxml2 2.9.14",
    "zlib 1.2.11",
    "libwebp 1.3.1",
    "curl 8.3.0",
    "Linux kernel 5.15.0",
    "sudo 1.9.12",
    "xz-utils 5.6.0",
    "libtiff 4.4.0",
)
_WEB_APPS = (
    "Apache HTTP Server 2.4.57",
    "nginx 1.22.1",
    "WordPress 6.2",
    "Jenkins 2.401",
    "GitLab CE 16.1",
    "Confluence Server 8.5",
    "Grafana 9.5.2",
    "phpMyAdmin 5.2.0",
)
_JAVA_LIBS = (
    "Apache Log4j 2.14.1",
    "Spring Framework 5.3.17",
    "Apache Struts 2.5.30",
    "jackson-databind 2.9.8",
    "Apache Commons Text 1.9",
)
_APPLIANCES = (
    "Fortinet FortiOS 7.2.4",
    "Cisco IOS XE 17.9",
    "Ivanti Connect Secure 22.3",
    "Citrix NetScaler ADC 13.1",
    "Palo Alto Networks PAN-OS 10.2",
)
_SERVICES = ("SSH", "RDP", "SMB", "LDAP", "HTTPS", "SMTP", "PostgreSQL", "Redis")


@dataclass(frozen=True, slots=True)
class _Weakness:
    cwe: str
    name: str
    title: str  # "{c}" is replaced by an affected component
    components: tuple[str, ...]


# Real CWE ids (mostly the CWE Top 25) with titles a scanner would plausibly print for them.
_WEAKNESSES = (
    _Weakness(
        "CWE-79",
        "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
        "Stored cross-site scripting (XSS) in {c}",
        _WEB_APPS,
    ),
    _Weakness(
        "CWE-89",
        "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')",
        "SQL injection in {c} login form",
        _WEB_APPS,
    ),
    _Weakness("CWE-787", "Out-of-bounds Write", "Out-of-bounds write in {c}", _LIBRARIES),
    _Weakness(
        "CWE-22",
        "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')",
        "Path traversal in {c} file download endpoint",
        _WEB_APPS,
    ),
    _Weakness(
        "CWE-78",
        "Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')",
        "OS command injection in {c} management interface",
        _APPLIANCES,
    ),
    _Weakness("CWE-416", "Use After Free", "Use-after-free in {c}", _LIBRARIES),
    _Weakness(
        "CWE-352",
        "Cross-Site Request Forgery (CSRF)",
        "Cross-site request forgery (CSRF) in {c} settings page",
        _WEB_APPS,
    ),
    _Weakness(
        "CWE-434", "Unrestricted Upload of File with Dangerous Type", "Unrestricted file upload in {c}", _WEB_APPS
    ),
    _Weakness("CWE-862", "Missing Authorization", "Missing authorization check in {c} admin API", _WEB_APPS),
    _Weakness("CWE-20", "Improper Input Validation", "Improper input validation in {c}", _LIBRARIES),
    _Weakness("CWE-125", "Out-of-bounds Read", "Out-of-bounds read in {c}", _LIBRARIES),
    _Weakness("CWE-287", "Improper Authentication", "Authentication bypass in {c}", _APPLIANCES),
    _Weakness("CWE-190", "Integer Overflow or Wraparound", "Integer overflow in {c}", _LIBRARIES),
    _Weakness("CWE-502", "Deserialization of Untrusted Data", "Deserialization of untrusted data in {c}", _JAVA_LIBS),
    _Weakness("CWE-798", "Use of Hard-coded Credentials", "Hard-coded credentials in {c}", _APPLIANCES),
    _Weakness("CWE-918", "Server-Side Request Forgery (SSRF)", "Server-side request forgery (SSRF) in {c}", _WEB_APPS),
    _Weakness("CWE-476", "NULL Pointer Dereference", "NULL pointer dereference in {c}", _LIBRARIES),
    _Weakness(
        "CWE-400",
        "Uncontrolled Resource Consumption",
        "Denial of service through resource exhaustion in {c}",
        _LIBRARIES,
    ),
    _Weakness(
        "CWE-611",
        "Improper Restriction of XML External Entity Reference",
        "XML external entity (XXE) injection in {c}",
        _JAVA_LIBS,
    ),
    _Weakness("CWE-295", "Improper Certificate Validation", "Improper certificate validation in {c}", _LIBRARIES),
    _Weakness(
        "CWE-327", "Use of a Broken or Risky Cryptographic Algorithm", "Weak cipher suites offered by {c}", _SERVICES
    ),
    _Weakness(
        "CWE-319", "Cleartext Transmission of Sensitive Information", "Cleartext credentials accepted by {c}", _SERVICES
    ),
)

# Informational checks: no CVE, no score, sometimes a CWE.
_INFO_CHECKS = (
    ("CWE-200", "Service banner of {c} discloses its version", _SERVICES),
    (None, "TLS certificate of {c} expires within 30 days", _SERVICES),
    (None, "ICMP timestamp response enabled", ("host",)),
    ("CWE-1104", "End-of-life software detected: {c}", _LIBRARIES + _WEB_APPS),
    (None, "Open port detected: {c}", _SERVICES),
)

_REMEDIATIONS = (
    "Upgrade to the latest vendor-supported version.",
    "Apply the vendor security advisory and restart the service.",
    "Restrict network access to trusted management hosts until patched.",
    "Disable the affected feature if it is not required.",
)

# Titles that stress CSV quoting, encodings and line handling. The first ones are placed in
# the first 20 findings so even a tiny data set contains every kind.
AWKWARD_TITLES = (
    'Heap overflow in libpng, "png_read_row" reachable from uploads',
    "Pufferüberlauf (Überlauf) im Druckdienst, Version 3.2",
    "日本語ロケールでのパストラバーサル (path traversal, Japanese locale)",
    'naïve certificate validation in "café" portal, accepts self-signed certificates',
    "Outdated agent reported:\nmultiple components need upgrades",
    'Scanner note, line one\r\nline two: "verify manually"',
    'Élévation de privilèges via \u2018sudoedit\u2019, option "-s"',
)
_AWKWARD_POSITIONS = {2 + 2 * i: title for i, title in enumerate(AWKWARD_TITLES)}
_AWKWARD_RATE = 0.03

# --- assets vocabulary -----------------------------------------------------------------------

_ASSET_TYPE_CUM = _cumulative((30, 30, 15, 15, 5, 5))  # in ASSET_TYPES order
_CRITICALITY_CUM = _cumulative((10, 25, 40, 25))  # in CRITICALITIES order
_OS_BY_TYPE = {
    "Server": (
        "Ubuntu 22.04 LTS",
        "Red Hat Enterprise Linux 9.3",
        "Windows Server 2022",
        "Debian 12",
        "Windows Server 2019",
        "SUSE Linux Enterprise Server 15 SP5",
    ),
    "Workstation": ("Windows 11 23H2", "Windows 10 22H2", "macOS 14 Sonoma", "Ubuntu 24.04 LTS"),
    "Container": ("Alpine Linux 3.19", "Debian 12 (slim)", "Ubuntu 22.04 LTS", "Distroless"),
    "Cloud Instance": ("Amazon Linux 2023", "Ubuntu 22.04 LTS", "Windows Server 2022", "Red Hat Enterprise Linux 9.3"),
    "Network Device": ("Cisco IOS XE 17.9", "Juniper Junos OS 22.4", "Fortinet FortiOS 7.2", "Arista EOS 4.30"),
    "Database": ("Red Hat Enterprise Linux 8.9", "Oracle Linux 8.8", "Windows Server 2019", "Ubuntu 22.04 LTS"),
}
_ENVIRONMENTS = ("prd", "stg", "dev")
_SERVER_ROLES = ("web", "app", "api", "batch", "mq", "files", "auth", "cache")
_K8S_SERVICES = ("payments-api", "checkout", "search", "user-profile", "notifications", "ledger")
_SITES = ("fra1", "lon2", "nyc1", "sfo3", "sin1")
_NETWORK_ROLES = ("core-sw", "edge-rtr", "fw", "access-sw", "vpn-gw")
_DB_ENGINES = ("pg", "mysql", "mssql", "oracle", "mongo")
_BUSINESS_UNITS = (
    "Finance",
    "Engineering",
    "IT Operations",
    "Sales",
    "Human Resources",
    "Research & Development",
    "Customer Support",
    "Marketing",
)
_FIRST_NAMES = (
    "alice",
    "bob",
    "carla",
    "deepak",
    "elena",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jonas",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "oscar",
    "priya",
)
_LAST_NAMES = (
    "smith",
    "mueller",
    "garcia",
    "tanaka",
    "okafor",
    "rossi",
    "novak",
    "silva",
    "kim",
    "larsen",
    "dubois",
    "kowalski",
)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    findings: int
    assets: int


def asset_count_for(findings: int) -> int:
    """About one asset per eight findings, and at least one."""
    return max(1, round(findings / FINDINGS_PER_ASSET))


def _fast_randint(rnd: Callable[[], float]) -> Callable[[int, int], int]:
    # random.randint goes through several Python-level calls; scaling one random() is a
    # few times cheaper, and its tiny bias does not matter for synthetic data.
    def randint(low: int, high: int) -> int:
        return low + int(rnd() * (high - low + 1))

    return randint


def _fast_choice(rnd: Callable[[], float]) -> Callable[[Sequence[T]], T]:
    def choice(values: Sequence[T]) -> T:
        return values[int(rnd() * len(values))]

    return choice


def _anchor(now: datetime | None) -> datetime:
    if now is None:
        return DEFAULT_NOW
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    # Whole seconds: the database keeps platform timestamps to the second, so generated rows
    # compare equal to what is read back.
    return now.astimezone(UTC).replace(microsecond=0)


def iter_assets(count: int, *, seed: int = 0, now: datetime | None = None) -> Iterator[Row]:
    """Yield ``count`` asset rows (catalog field names, no ``account_id``), ids ``asset-000001``..."""
    rng = random.Random(f"assets:{seed}")  # noqa: S311 - reproducible test data, not secrets
    rnd = rng.random
    randint, choice = _fast_randint(rnd), _fast_choice(rnd)
    anchor = _anchor(now)
    for number in range(1, count + 1):
        asset_type = _pick(ASSET_TYPES, _ASSET_TYPE_CUM, rnd())
        ipv4 = f"10.{randint(0, 255)}.{randint(0, 255)}.{randint(1, 254)}"
        if asset_type == "Server":
            hostname = f"{choice(_ENVIRONMENTS)}-{choice(_SERVER_ROLES)}-{number:05d}.corp.example.com"
        elif asset_type == "Workstation":
            hostname = f"{choice(('wks', 'lt'))}-{number:06d}.corp.example.com"
        elif asset_type == "Container":
            hostname = f"{choice(_K8S_SERVICES)}-{randint(0, 2**36 - 1):09x}-{number:05x}"
        elif asset_type == "Cloud Instance":
            hostname = f"ip-{ipv4.replace('.', '-')}.ec2.internal"
        elif asset_type == "Network Device":
            hostname = f"{choice(_SITES)}-{choice(_NETWORK_ROLES)}-{number:04d}.net.example.com"
        else:
            hostname = f"{choice(_ENVIRONMENTS)}-{choice(_DB_ENGINES)}-{number:05d}.db.example.com"
        roll = rnd()
        if asset_type == "Cloud Instance" or roll < 0.87:
            ip: str | None = ipv4
        elif roll < 0.97:
            # 2001:db8::/32 is the documentation prefix: realistic shape, never a real host.
            ip = f"2001:db8:{randint(0, 0xFFFF):x}:{randint(0, 0xFFFF):x}::{randint(1, 0xFFFF):x}"
        else:
            ip = None
        age = randint(_DAY, 3 * 365 * _DAY)
        first_seen = anchor - timedelta(seconds=age)
        last_seen = anchor - timedelta(seconds=randint(0, min(age, 30 * _DAY)))
        yield {
            "id": f"asset-{number:06d}",
            "hostname": hostname,
            "ip": ip,
            "os": choice(_OS_BY_TYPE[asset_type]),
            "type": asset_type,
            "owner": f"{choice(_FIRST_NAMES)}.{choice(_LAST_NAMES)}@example.com",
            "business_unit": choice(_BUSINESS_UNITS),
            "criticality": _pick(CRITICALITIES, _CRITICALITY_CUM, rnd()),
            "first_seen": first_seen,
            "last_seen": last_seen,
        }


def iter_findings(count: int, *, asset_count: int, seed: int = 0, now: datetime | None = None) -> Iterator[Row]:
    """Yield ``count`` finding rows (catalog field names, no ``account_id``).

    Ids run ``finding-0000001``...; each finding points at one of ``asset-000001`` to
    ``asset-<asset_count>``.
    """
    if asset_count < 1:
        raise ValueError("asset_count must be at least 1")
    rng = random.Random(f"findings:{seed}")  # noqa: S311 - reproducible test data, not secrets
    rnd = rng.random
    randint, choice = _fast_randint(rnd), _fast_choice(rnd)
    anchor = _anchor(now)
    max_age = 730 * _DAY
    for index in range(count):
        severity = _pick(SEVERITIES, _SEVERITY_CUM, rnd())
        status = _pick(FINDING_STATUSES, _STATUS_CUM, rnd())
        source = choice(_SOURCES)
        age = randint(3600, max_age)
        first_seen = anchor - timedelta(seconds=age)
        if severity == "Info":
            cwe, template, components = choice(_INFO_CHECKS)
            title = template.format(c=choice(components))
            weakness_name = "Informational check"
            cve = None
            cvss: float | None = 0.0 if rnd() < 0.5 else None
        else:
            weakness = choice(_WEAKNESSES)
            cwe = weakness.cwe
            title = weakness.title.format(c=choice(weakness.components))
            weakness_name = weakness.name
            low, high = _CVSS_TENTHS[severity]
            cvss = randint(low, high) / 10
            # Some findings are configuration issues without a CVE; a CVE is never younger
            # than the finding that reports it.
            cve_year = randint(min(2014, first_seen.year), first_seen.year)
            cve = f"CVE-{cve_year}-{randint(1000, 52999):04d}" if rnd() < 0.85 else None
        awkward = _AWKWARD_POSITIONS.get(index)
        if awkward is None and rnd() < _AWKWARD_RATE:
            awkward = choice(AWKWARD_TITLES)
        if awkward is not None:
            title = awkward
        roll = rnd()
        if roll < 0.1:
            description = None
        elif roll < 0.55:
            description = f"{weakness_name}. Reported by {source}."
        else:
            description = f"{weakness_name}. Reported by {source}.\n\nRemediation: {choice(_REMEDIATIONS)}"

        if status == "Resolved":
            resolved_after = randint(3600, age)
            resolved_at: datetime | None = first_seen + timedelta(seconds=resolved_after)
            last_seen = first_seen + timedelta(seconds=randint(0, resolved_after))
        else:
            resolved_at = None
            # Unresolved findings are rescanned regularly, so they were seen recently.
            last_seen = anchor - timedelta(seconds=randint(0, min(age, 14 * _DAY)))
        sla = _SLA_DAYS.get(severity)
        yield {
            "id": f"finding-{index + 1:07d}",
            "asset_id": f"asset-{randint(1, asset_count):06d}",
            "title": title,
            "description": description,
            "severity": severity,
            "status": status,
            "cvss_score": cvss,
            "cve": cve,
            "cwe": cwe,
            "source": source,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "due_date": None if sla is None else (first_seen + timedelta(days=sla)).date(),
            "resolved_at": resolved_at,
        }


def generate_platform_data(
    engine: Engine, account_id: str, findings: int, seed: int = 0, now: datetime | None = None
) -> GenerationResult:
    """Insert ``findings`` generated findings and their assets into an empty account.

    One transaction: either everything is there afterwards or nothing is. Ids are fixed
    (``finding-0000001``...), so an account that already holds platform data is refused
    rather than half-merged.
    """
    if findings < 1:
        raise BadUserInput(f"The number of findings must be at least 1, not {findings}.", findings=findings)
    get_account(engine, account_id)
    asset_total = asset_count_for(findings)
    # IMMEDIATE: take SQLite's write lock before the emptiness check, not on the first insert.
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
        for table in (tables.findings, tables.assets):
            if connection.execute(select(exists().where(table.c.account_id == account_id))).scalar():
                raise BadUserInput(
                    f"Account {account_id} already has {table.name}; generate into an account without platform data.",
                    account_id=account_id,
                )
        _insert_all(connection, tables.assets, account_id, iter_assets(asset_total, seed=seed, now=now))
        _insert_all(
            connection,
            tables.findings,
            account_id,
            iter_findings(findings, asset_count=asset_total, seed=seed, now=now),
        )
    tables.analyze_platform_tables(engine)
    return GenerationResult(findings=findings, assets=asset_total)


def _insert_all(connection: Connection, table: Table, account_id: str, rows: Iterator[Row]) -> None:
    # account_id is bound once on the statement; each batch is one DBAPI executemany.
    statement = insert(table).values(account_id=account_id)
    while batch := list(islice(rows, BATCH_SIZE)):
        connection.execute(statement, batch)
