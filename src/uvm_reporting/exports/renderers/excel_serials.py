"""Excel serial numbers of Arrow timestamp and date columns, equal to the last bit to what
xlsxwriter computes per cell (``xlsxwriter.utility._datetime_to_excel_datetime``):

    serial = days + (seconds + microseconds / 1e6) / 86400    (UTC wall clock, days from 1899-12-31)
    then 1 more once it is past 59                            (Excel's 1900 leap-year quirk)

The same IEEE operations in the same order give the same doubles. Values before 1900-03-01,
where xlsxwriter has more special cases, stay ``datetime`` objects for it to convert.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MICROS_PER_DAY = 86_400_000_000
# Excel's day zero; its cells hold naive moments, so this is naive on purpose.
_EXCEL_EPOCH = datetime(1899, 12, 31)  # noqa: DTZ001
# 1899-12-31 to 1970-01-01, in days.
_EPOCH_DAYS = (date(1970, 1, 1) - _EXCEL_EPOCH.date()).days
_PLAIN_FROM_DAY = (date(1900, 3, 1) - _EXCEL_EPOCH.date()).days


def timestamp_serials(values: Any) -> list[Any]:
    """A timestamp column (Arrow timestamp, or SQLite's ISO text) as Excel serials (floats),
    NULL as None; values before 1900-03-01 as naive UTC ``datetime``."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.timestamp("us", tz="UTC"))
    values = pc.cast(values, pa.timestamp("us", tz=values.type.tz or "UTC"))
    micros = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return _serials(values, micros, micros_per_unit=1)


def date_serials(values: Any) -> list[Any]:
    """A date column (date32, or ISO text) as Excel serials, NULL as None; values before
    1900-03-01 as ``datetime`` at midnight."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.date32())
    days = pc.fill_null(pc.cast(pc.cast(values, pa.date32()), pa.int32()), 0).to_numpy(zero_copy_only=False)
    return _serials(values, days, micros_per_unit=_MICROS_PER_DAY)


def _serials(values: Any, counts: Any, *, micros_per_unit: int) -> list[Any]:
    valid = ~np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    micros = np.where(valid, counts, 0).astype(np.int64) * micros_per_unit + _EPOCH_DAYS * _MICROS_PER_DAY
    days = micros // _MICROS_PER_DAY
    rest = micros - days * _MICROS_PER_DAY
    seconds = rest // 1_000_000
    microseconds = rest - seconds * 1_000_000
    serial = days.astype(np.float64) + (seconds.astype(np.float64) + microseconds.astype(np.float64) / 1e6) / 86400
    serial = serial + 1  # every value from 1900-03-01 on is past 59
    result: list[Any] = serial.tolist()
    early = valid & (days < _PLAIN_FROM_DAY)
    for position in np.flatnonzero(early):
        result[position] = _EXCEL_EPOCH + timedelta(microseconds=int(micros[position]))
    for position in np.flatnonzero(~valid):
        result[position] = None
    return result
