"""The field catalog: which entities a report may query and the fields of each.

Pure data, no I/O. The store's platform tables (``findings``, ``assets``) have columns named
exactly like these fields; a findings report reaches an asset's fields through the
``asset`` relation (``asset.hostname``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    STRING = "string"
    TEXT = "text"
    NUMBER = "number"
    TIMESTAMP = "timestamp"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    description: str
    allowed_values: tuple[str, ...] = ()
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Relation:
    """A to-one link from one entity to another: ``<name>.<field>`` selects the target's field."""

    name: str
    target: str
    local_field: str


@dataclass(frozen=True, slots=True)
class EntitySpec:
    name: str
    fields: tuple[FieldSpec, ...]
    relations: tuple[Relation, ...] = ()

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


SEVERITIES = ("Critical", "High", "Medium", "Low", "Info")
FINDING_STATUSES = ("Open", "In Progress", "Resolved", "Risk Accepted")
ASSET_TYPES = ("Server", "Workstation", "Container", "Cloud Instance", "Network Device", "Database")
CRITICALITIES = ("Critical", "High", "Medium", "Low")

S = FieldType.STRING
FINDINGS = EntitySpec(
    name="findings",
    fields=(
        FieldSpec("id", S, "Finding id, unique within the account.", nullable=False),
        FieldSpec("asset_id", S, "Id of the affected asset."),
        FieldSpec("title", FieldType.TEXT, "Short title of the finding.", nullable=False),
        FieldSpec("description", FieldType.TEXT, "Longer description."),
        FieldSpec("severity", S, "Severity.", SEVERITIES, nullable=False),
        FieldSpec("status", S, "Remediation status.", FINDING_STATUSES, nullable=False),
        FieldSpec("cvss_score", FieldType.NUMBER, "CVSS v3 base score, 0.0 to 10.0."),
        FieldSpec("cve", S, "CVE identifier, e.g. CVE-2024-3094."),
        FieldSpec("cwe", S, "CWE identifier, e.g. CWE-79."),
        FieldSpec("source", S, "The scanner or feed that reported it."),
        FieldSpec("first_seen", FieldType.TIMESTAMP, "First time seen (UTC).", nullable=False),
        FieldSpec("last_seen", FieldType.TIMESTAMP, "Last time seen (UTC).", nullable=False),
        FieldSpec("due_date", FieldType.DATE, "Remediation due date."),
        FieldSpec("resolved_at", FieldType.TIMESTAMP, "When it was resolved (UTC)."),
    ),
    relations=(Relation(name="asset", target="assets", local_field="asset_id"),),
)

ASSETS = EntitySpec(
    name="assets",
    fields=(
        FieldSpec("id", S, "Asset id, unique within the account.", nullable=False),
        FieldSpec("hostname", S, "Host name.", nullable=False),
        FieldSpec("ip", S, "IPv4 or IPv6 address."),
        FieldSpec("os", S, "Operating system."),
        FieldSpec("type", S, "Kind of asset.", ASSET_TYPES),
        FieldSpec("owner", S, "Owner's e-mail address."),
        FieldSpec("business_unit", S, "Owning business unit."),
        FieldSpec("criticality", S, "Business criticality.", CRITICALITIES),
        FieldSpec("first_seen", FieldType.TIMESTAMP, "First time seen (UTC).", nullable=False),
        FieldSpec("last_seen", FieldType.TIMESTAMP, "Last time seen (UTC).", nullable=False),
    ),
)

ENTITIES: dict[str, EntitySpec] = {e.name: e for e in (FINDINGS, ASSETS)}


@dataclass(frozen=True, slots=True)
class ResolvedField:
    """A field path of a report (``title`` or ``asset.hostname``) resolved against the catalog."""

    path: str
    entity: EntitySpec
    spec: FieldSpec
    relation: Relation | None = None


def resolve_field(entity: EntitySpec, path: str) -> ResolvedField | None:
    """Resolve ``field`` or ``relation.field`` on ``entity``; None when unknown."""
    relation_name, dot, field_name = path.partition(".")
    if not dot:
        spec = entity.field(path)
        return ResolvedField(path, entity, spec) if spec else None
    relation = next((r for r in entity.relations if r.name == relation_name), None)
    if relation is None:
        return None
    target = ENTITIES[relation.target]
    spec = target.field(field_name)
    return ResolvedField(path, target, spec, relation) if spec else None


def field_paths(entity: EntitySpec) -> list[str]:
    """Every selectable path of an entity, its own fields first, then through relations."""
    paths = [f.name for f in entity.fields]
    for relation in entity.relations:
        paths += [f"{relation.name}.{f.name}" for f in ENTITIES[relation.target].fields]
    return paths
