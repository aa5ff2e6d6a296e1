"""Large SQLite exports in parallel: the rows split into contiguous ranges of ids, each read by
its own connection and thread of the export process, written out in order (exports/ordered_parts.py).

The tools a user would otherwise run (``sqlite3 -csv``) use one core, and most of a SQLite
export's time is SQLite reading and joining rows; ADBC's driver steps SQLite without holding
the GIL, so two connections use both cores.

Only a report ordered by its entity's id alone, without a limit, is split: then the ranges,
one after the other, hold exactly the rows of the single query in its order.
"""

from __future__ import annotations

from itertools import pairwise

from sqlalchemy import ColumnElement, Engine, func, select

from uvm_reporting.database.tables import PLATFORM_TABLES
from uvm_reporting.domain.report_definition.model import ReportDefinition


def split_by_id(
    engine: Engine, definition: ReportDefinition, account_id: str, parts: int, min_rows: int
) -> list[ColumnElement[bool]] | None:
    """One condition per range of the entity's ids, in order; None when the export should run
    as one query (one part wanted, too few rows to pay off, or an order ranges cannot keep)."""
    if parts < 2 or definition.limit is not None or not _ordered_by_id_alone(definition):
        return None
    table = PLATFORM_TABLES[definition.entity]
    of_account = table.c.account_id == account_id
    with engine.connect() as connection:
        # Both lookups walk the (account_id, id) primary key, not the rows.
        total = connection.scalar(select(func.count()).select_from(table).where(of_account)) or 0
        if total < max(min_rows, parts):
            return None
        bounds = [
            connection.scalar(
                select(table.c.id).where(of_account).order_by(table.c.id).offset(total * index // parts).limit(1)
            )
            for index in range(1, parts)
        ]
    conditions: list[ColumnElement[bool]] = [table.c.id < bounds[0]]
    conditions += [(table.c.id >= low) & (table.c.id < high) for low, high in pairwise(bounds)]
    conditions.append(table.c.id >= bounds[-1])
    return conditions


def _ordered_by_id_alone(definition: ReportDefinition) -> bool:
    # The compiler appends "id ascending" to every sort; a sort that is only that, or empty, is it.
    return all(
        key.resolved.relation is None and key.field == "id" and key.direction == "asc" for key in definition.sort
    )
