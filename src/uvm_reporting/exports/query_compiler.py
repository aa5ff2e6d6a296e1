"""Turn a validated report definition into one SQLAlchemy Core ``SELECT``.

Rules the statement always keeps:

* tenant isolation first: ``<entity>.account_id = :account`` is the first predicate, and a
  relation's join also matches ``account_id``, so no row of another account can appear;
* every filter value is a bound parameter, never SQL text;
* a total order (the definition's sort, then the entity's ``id``), so running a report twice
  over the same data writes byte-identical files.

``compile_lookup_query`` gives the same rows another way, for the export process on
PostgreSQL: the entity's own SELECT, which carries each shown relation's key, plus one SELECT
per relation of the account's targets, joined by key in the export process. A relation used
only for its columns (no filter, no sort on it) is all it takes; the database then streams
the entity's rows in index order instead of hash-joining and sorting the whole result before
its first row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Table, and_, or_, select
from sqlalchemy.sql.elements import UnaryExpression

from uvm_reporting.database.tables import PLATFORM_TABLES
from uvm_reporting.domain.catalog import FieldType, Relation, ResolvedField
from uvm_reporting.domain.report_definition.model import Filter, FilterOp, ReportDefinition, SortKey
from uvm_reporting.exports.export_job import LOOKUP_KEY


class _Sources:
    """The entity's table and, joined on demand, one aliased table per relation used."""

    def __init__(self, definition: ReportDefinition) -> None:
        self.base = PLATFORM_TABLES[definition.entity]
        self._joined: dict[str, tuple[Relation, FromClause]] = {}

    def column(self, field: ResolvedField) -> ColumnElement[Any]:
        if field.relation is None:
            return self.base.c[field.spec.name]
        return self._relation(field.relation).c[field.spec.name]

    def _relation(self, relation: Relation) -> FromClause:
        if relation.name not in self._joined:
            target: Table = PLATFORM_TABLES[relation.target]
            self._joined[relation.name] = (relation, target.alias(relation.name))
        return self._joined[relation.name][1]

    def from_clause(self) -> FromClause:
        joined: FromClause = self.base
        for relation, target in self._joined.values():
            # LEFT OUTER: a finding whose asset is unknown still appears, with empty asset fields.
            joined = joined.outerjoin(
                target,
                and_(
                    target.c.account_id == self.base.c.account_id,
                    target.c.id == self.base.c[relation.local_field],
                ),
            )
        return joined


def compile_report_query(definition: ReportDefinition, account_id: str) -> Select[Any]:
    """The report's rows for one account: its columns in order, each labelled with its path."""
    sources = _Sources(definition)
    columns = [sources.column(definition.resolve(path)).label(path) for path in definition.columns]
    return _select(definition, sources, columns, account_id)


def _select(definition: ReportDefinition, sources: _Sources, columns: list[Any], account_id: str) -> Select[Any]:
    """``columns`` of the account's rows, with the definition's filters, total order and limit."""
    # Filters and sort keys first: a relation they use is joined when its column is asked for.
    conditions = [_condition(sources.column(f.resolved), f) for f in definition.filters]
    order_by = _order_by(definition, sources)
    statement = (
        select(*columns)
        .select_from(sources.from_clause())
        .where(sources.base.c.account_id == account_id, *conditions)
        .order_by(*order_by)
    )
    if definition.limit is not None:
        statement = statement.limit(definition.limit)
    return statement


@dataclass(frozen=True, slots=True)
class RelationLookup:
    """The account's targets of one relation: ``LOOKUP_KEY`` and the report's columns of it."""

    relation: Relation
    statement: Select[Any]

    @property
    def key_column(self) -> str:
        """The label of this relation's key in the main SELECT."""
        return lookup_key_column(self.relation.name)


@dataclass(frozen=True, slots=True)
class LookupQuery:
    main: Select[Any]
    lookups: tuple[RelationLookup, ...]


def lookup_key_column(relation_name: str) -> str:
    return f"{relation_name}{LOOKUP_KEY}"


def compile_lookup_query(definition: ReportDefinition, account_id: str) -> LookupQuery | None:
    """The report's rows as the entity's own SELECT plus one lookup per relation that is only
    shown; None when no relation is (the report joins nothing, or filters or sorts on what it
    joins). The main SELECT has the same filters, order and limit as ``compile_report_query``:
    a to-one LEFT OUTER join adds no row and drops none."""
    filtered_or_sorted = [item.resolved for item in definition.filters] + [key.resolved for key in definition.sort]
    used_elsewhere = {field.relation.name for field in filtered_or_sorted if field.relation is not None}
    shown: dict[str, Relation] = {}
    for column in definition.resolved_columns:
        if column.relation is not None and column.relation.name not in used_elsewhere:
            shown.setdefault(column.relation.name, column.relation)
    if not shown:
        return None
    lookups = tuple(_lookup(definition, relation, account_id) for relation in shown.values())
    sources = _Sources(definition)
    columns = [
        sources.column(resolved).label(path)
        for path in definition.columns
        if ((resolved := definition.resolve(path)).relation is None or resolved.relation.name not in shown)
    ]
    columns += [sources.base.c[lookup.relation.local_field].label(lookup.key_column) for lookup in lookups]
    return LookupQuery(_select(definition, sources, columns, account_id), lookups)


def _lookup(definition: ReportDefinition, relation: Relation, account_id: str) -> RelationLookup:
    target = PLATFORM_TABLES[relation.target]
    fields = [
        (path, resolved.spec.name)
        for path in definition.columns
        if (resolved := definition.resolve(path)).relation == relation
    ]
    statement = select(target.c.id.label(LOOKUP_KEY), *(target.c[name].label(path) for path, name in fields)).where(
        target.c.account_id == account_id
    )
    return RelationLookup(relation, statement)


def report_column_types(definition: ReportDefinition) -> list[tuple[str, FieldType]]:
    """Each column's path (its label in the result) and catalog type, in column order."""
    return [(column.path, column.type) for column in definition.resolved_columns]


def _not_in(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    # "Not one of these" includes rows where the field is empty, as a reader expects;
    # plain SQL NOT IN would drop them (and ne likewise, through IS DISTINCT FROM).
    return or_(column.is_(None), column.not_in(_as_list(value)))


def _between(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    low, high = _as_list(value)
    return column.between(low, high)


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, tuple):
        raise TypeError(f"expected a tuple of values, got {value!r}")
    return list(value)


_Condition = Callable[[ColumnElement[Any], Any], ColumnElement[bool]]
_CONDITIONS: dict[FilterOp, _Condition] = {
    FilterOp.EQ: lambda column, value: column == value,
    FilterOp.NE: lambda column, value: column.is_distinct_from(value),
    FilterOp.IN: lambda column, value: column.in_(_as_list(value)),
    FilterOp.NOT_IN: _not_in,
    FilterOp.LT: lambda column, value: column < value,
    FilterOp.LTE: lambda column, value: column <= value,
    FilterOp.GT: lambda column, value: column > value,
    FilterOp.GTE: lambda column, value: column >= value,
    FilterOp.BETWEEN: _between,
    # Case-insensitive on every database; autoescape makes %, _ and / in the value literal.
    FilterOp.CONTAINS: lambda column, value: column.icontains(value, autoescape=True),
    FilterOp.STARTS_WITH: lambda column, value: column.istartswith(value, autoescape=True),
    FilterOp.IS_NULL: lambda column, _value: column.is_(None),
    FilterOp.IS_NOT_NULL: lambda column, _value: column.is_not(None),
}


def _condition(column: ColumnElement[Any], item: Filter) -> ColumnElement[bool]:
    return _CONDITIONS[item.op](column, item.value)


def _order_by(definition: ReportDefinition, sources: _Sources) -> list[UnaryExpression[Any]]:
    order_by = [_order(sources.column(key.resolved), key) for key in definition.sort]
    if not any(key.resolved.relation is None and key.field == "id" for key in definition.sort):
        order_by.append(sources.base.c.id.asc())
    return order_by


def _order(column: ColumnElement[Any], key: SortKey) -> UnaryExpression[Any]:
    ordered = column.asc() if key.direction == "asc" else column.desc()
    # Empty values last in either direction; the databases' own defaults differ.
    return ordered.nulls_last()
