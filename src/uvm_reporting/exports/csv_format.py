"""Kept so existing imports keep working: the CSV writer lives in ``exports.formats.csv_writer``."""

from uvm_reporting.exports.formats.csv_writer import write_csv

__all__ = ["write_csv"]
