"""Neutralise spreadsheet formulas in exported text cells (CSV injection, OWASP).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken as a
formula by spreadsheet programs. Prefixing a single quote makes them show it as text.
Only text columns are touched: a negative number stays a number.
"""

from __future__ import annotations

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: str) -> str:
    if value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value
