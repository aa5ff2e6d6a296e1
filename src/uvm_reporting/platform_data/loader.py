"""Load platform data (findings, assets) from NDJSON or CSV files into one account.

Every row is checked against the field catalog before anything is stored, and the whole file
is one transaction: a bad row anywhere means nothing is loaded. The file is streamed and
inserted in batches, so memory stays flat however large it is; duplicate ids are found per
batch with a look-up in the database (which already holds the earlier batches) instead of a
set of every id seen.

Errors name the file's physical line (1-based; for a CSV record whose quoted fields span
several lines, the line the record starts on), the field and the reason.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine, Insert, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

from uvm_reporting.database import tables
from uvm_reporting.database.accounts import get_account
from uvm_reporting.domain.catalog import ENTITIES, EntitySpec, FieldSpec, FieldType
from uvm_reporting.errors import BadUserInput

BATCH_SIZE = 5_000
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
CSV_SUFFIXES = (".csv",)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SHOWN_VALUE_LIMIT = 60


class _FieldError(Exception):
    """A value is invalid; the caller adds the line and field."""


@dataclass(frozen=True, slots=True)
class _Record:
    line: int
    values: dict[str, Any]


def load_platform_file(engine: Engine, account_id: str, entity: str, path: Path) -> int:
    """Validate and load every row of ``path`` into ``entity`` of the account; returns the count.

    ``.ndjson``/``.jsonl``: one JSON object per line (blank lines are skipped). ``.csv``: a
    header row of field names, then one record per row; an empty cell is null. Raises
    :class:`BadUserInput` (nothing loaded) for the first bad row, naming line and field.
    """
    spec = ENTITIES.get(entity)
    if spec is None:
        raise BadUserInput(f'Unknown entity "{entity}"; valid entities: {", ".join(sorted(ENTITIES))}.', entity=entity)
    suffix = path.suffix.lower()
    if suffix not in NDJSON_SUFFIXES + CSV_SUFFIXES:
        raise BadUserInput(
            f"Cannot tell the format of {path.name}: use a .ndjson, .jsonl or .csv file.", path=str(path)
        )
    if not path.is_file():
        raise BadUserInput(f"File {path} does not exist.", path=str(path))
    get_account(engine, account_id)
    table = tables.PLATFORM_TABLES[entity]
    validator = _RowValidator(spec, table)
    records = _ndjson_records(path, validator) if suffix in NDJSON_SUFFIXES else _csv_records(path, validator)
    try:
        # IMMEDIATE: take SQLite's write lock up front, so the look-ups before the first insert
        # cannot turn into a failed lock upgrade when another writer commits meanwhile.
        with closing(records), engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
            loaded = _store(connection, table, account_id, records)
    except _AlreadyStored as error:
        raise _already_stored_error(engine, table, account_id, error) from None
    tables.analyze_platform_tables(engine)
    return loaded


# --- validation ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as it appears in an error message: JSON-quoted, shortened when long."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_VALUE_LIMIT else text[: _SHOWN_VALUE_LIMIT - 3] + "..."


def _bad(line: int, field: str | None, reason: str) -> BadUserInput:
    where = f'line {line}, field "{field}"' if field is not None else f"line {line}"
    return BadUserInput(f"{where}: {reason}", line=line, field=field)


def _parse_timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _FieldError(f"{_show(text)} is not an ISO-8601 timestamp (e.g. 2026-03-01T10:00:00Z)") from None
    if value.tzinfo is None:
        raise _FieldError(f'{_show(text)} has no time zone; add "Z" or an offset such as +02:00')
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _FieldError(f"{_show(text)} is out of range") from None


def _parse_date(text: str) -> date:
    if not _DATE.fullmatch(text):
        raise _FieldError(f"{_show(text)} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _FieldError(f"{_show(text)} is not a valid calendar date") from None


def _parse_number_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _FieldError(f"{_show(text)} is not a number") from None


class _RowValidator:
    """Turns one raw row (JSON-typed values, or CSV text) into the table's column values."""

    def __init__(self, spec: EntitySpec, table: Table) -> None:
        self.spec = spec
        self.fields = {field.name: field for field in spec.fields}
        self.required = tuple(field.name for field in spec.fields if not field.nullable)
        self.max_lengths: dict[str, int] = {}
        for field in spec.fields:
            column_type = table.c[field.name].type
            if isinstance(column_type, String) and column_type.length is not None:
                self.max_lengths[field.name] = column_type.length
        self.valid_names = ", ".join(self.fields)

    def unknown_field(self, line: int, name: str) -> BadUserInput:
        return _bad(line, name, f"unknown field; {self.spec.name} have: {self.valid_names}")

    def validate(self, line: int, raw: dict[str, Any], *, from_text: bool) -> dict[str, Any]:
        """Column values for ``raw``; ``from_text`` says the values are CSV cells ('' is null)."""
        for name in raw:
            if name not in self.fields:
                raise self.unknown_field(line, name)
        values: dict[str, Any] = {}
        for name, field in self.fields.items():
            value = raw.get(name)
            if from_text and value == "":
                value = None
            if value is None:
                if not field.nullable:
                    reason = "is required" if name not in raw else "is required and must not be empty"
                    raise _bad(line, name, reason)
                values[name] = None
                continue
            try:
                values[name] = self._convert(field, value, from_text)
            except _FieldError as error:
                raise _bad(line, name, str(error)) from None
        return values

    def _convert(self, field: FieldSpec, value: Any, from_text: bool) -> Any:
        kind = field.type
        if kind is FieldType.NUMBER:
            if from_text:
                number = _parse_number_text(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # a JSON integer too large for a float
                    number = math.inf
            else:
                raise _FieldError(f"{_show(value)} is not a number")
            if not math.isfinite(number):
                raise _FieldError(f"{_show(value)} is not a finite number")
            if field.name == "cvss_score" and not 0.0 <= number <= 10.0:
                raise _FieldError(f"{_show(value)} is outside the CVSS range 0.0 to 10.0")
            return number
        if not isinstance(value, str):
            raise _FieldError(f"{_show(value)} is not a string")
        if kind is FieldType.TIMESTAMP:
            return _parse_timestamp(value)
        if kind is FieldType.DATE:
            return _parse_date(value)
        if field.allowed_values and value not in field.allowed_values:
            raise _FieldError(f"{_show(value)} is not one of {', '.join(field.allowed_values)}")
        limit = self.max_lengths.get(field.name)
        if limit is not None and len(value) > limit:
            raise _FieldError(f"is {len(value)} characters long; at most {limit} are allowed")
        return value


# --- readers ---------------------------------------------------------------------------------


def _lines(file: BinaryIO) -> Iterator[tuple[int, str]]:
    """Each physical line, decoded, with its 1-based number.

    Splitting bytes on b"\n" and decoding line by line (rather than reading in text mode)
    keeps the line numbers exact, also for a decoding error.
    """
    for number, data in enumerate(file, start=1):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(number, None, "is not valid UTF-8") from None
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def _ndjson_records(path: Path, validator: _RowValidator) -> Generator[_Record, None, None]:
    with path.open("rb") as file:
        for line_number, text in _lines(file):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as error:
                raise _bad(line_number, None, f"is not valid JSON ({error})") from None
            if not isinstance(row, dict):
                raise _bad(line_number, None, "is not a JSON object")
            yield _Record(line_number, validator.validate(line_number, row, from_text=False))


def _csv_records(path: Path, validator: _RowValidator) -> Generator[_Record, None, None]:
    with path.open("rb") as file:
        rows = _csv_rows(file)
        header_line, header = next(rows, (1, None))
        if header is None:
            raise _bad(1, None, "the file is empty; a CSV file starts with a header row of field names")
        names = _check_header(validator, header_line, header)
        for line_number, row in rows:
            if not row:
                continue
            if len(row) != len(names):
                raise _bad(line_number, None, f"has {len(row)} values but the header names {len(names)} fields")
            raw = dict(zip(names, row, strict=True))
            yield _Record(line_number, validator.validate(line_number, raw, from_text=True))


def _csv_rows(file: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record with the physical line it starts on (quoted fields may span lines)."""
    reader = csv.reader(text for _, text in _lines(file))
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _bad(start, None, f"is not valid CSV ({error})") from None
        yield start, row


def _check_header(validator: _RowValidator, line: int, header: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in header:
        if name not in validator.fields:
            raise validator.unknown_field(line, name)
        if name in seen:
            raise _bad(line, name, "appears twice in the header")
        seen.add(name)
    for name in validator.required:
        if name not in seen:
            raise _bad(line, name, "is required but has no column in the header")
    return header


# --- storing ---------------------------------------------------------------------------------


class _AlreadyStored(Exception):
    """A row's id is already in the table: stored before this load, or earlier in this file."""

    def __init__(self, line: int, record_id: str) -> None:
        super().__init__(record_id)
        self.line = line
        self.record_id = record_id


def _store(connection: Connection, table: Table, account_id: str, records: Iterator[_Record]) -> int:
    statement = insert(table).values(account_id=account_id)
    batch: dict[str, _Record] = {}
    loaded = 0

    def fail(error: BadUserInput) -> BadUserInput:
        # Rows before the bad one may hold an earlier problem (an id already stored): the
        # first problem in file order is the one to report.
        _check_not_stored(connection, table, account_id, batch)
        return error

    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except BadUserInput as error:
            raise fail(error) from None
        record_id = record.values["id"]
        earlier = batch.get(record_id)
        if earlier is not None:
            reason = f"{_show(record_id)} is a duplicate of line {earlier.line}"
            raise fail(_bad(record.line, "id", reason))
        batch[record_id] = record
        if len(batch) >= BATCH_SIZE:
            loaded += _flush(connection, statement, table, account_id, batch)
    return loaded + _flush(connection, statement, table, account_id, batch)


def _flush(connection: Connection, statement: Insert, table: Table, account_id: str, batch: dict[str, _Record]) -> int:
    if not batch:
        return 0
    _check_not_stored(connection, table, account_id, batch)
    try:
        connection.execute(statement, [record.values for record in batch.values()])
    except IntegrityError as error:
        # Only reachable when another writer stored the same ids meanwhile.
        raise BadUserInput(f"The rows conflict with data stored meanwhile: {error.orig}") from None
    count = len(batch)
    batch.clear()
    return count


def _check_not_stored(connection: Connection, table: Table, account_id: str, batch: dict[str, _Record]) -> None:
    if not batch:
        return
    stored = (
        connection.execute(select(table.c.id).where(table.c.account_id == account_id, table.c.id.in_(list(batch))))
        .scalars()
        .all()
    )
    if stored:
        record = min((batch[record_id] for record_id in stored), key=lambda r: r.line)
        raise _AlreadyStored(record.line, record.values["id"])


def _already_stored_error(engine: Engine, table: Table, account_id: str, error: _AlreadyStored) -> BadUserInput:
    # The load's transaction is rolled back by now, so the table shows only what predates it:
    # the id is either there, or it came from an earlier batch of this same file.
    with engine.connect() as connection:
        predates = connection.execute(
            select(table.c.id).where(table.c.account_id == account_id, table.c.id == error.record_id)
        ).first()
    shown = _show(error.record_id)
    reason = (
        f"{shown} already exists in this account"
        if predates is not None
        else f"{shown} appears more than once in this file"
    )
    return _bad(error.line, "id", reason)
