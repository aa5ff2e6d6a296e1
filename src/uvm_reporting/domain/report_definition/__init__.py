"""A report's definition: the JSON object a user saves and an API client runs.

Pure, no I/O:

* :mod:`.model`: the parsed definition (:class:`~.model.ReportDefinition`) and its rules' tables;
* :mod:`.shape`: pydantic models check the shape (keys, JSON types, sizes), refusing unknown keys;
* :mod:`.catalog_checks`: field paths, operators per field type and filter values against the
  field catalog, converting filter values to typed Python values;
* :mod:`.parsing`: :func:`~.parsing.parse_report_definition` runs them, and the optional
  ``schedule`` object's validation (:mod:`uvm_reporting.domain.schedule.validation`). Every
  problem a pass finds is reported at once, each with its location (``filters[0].op``), in one
  :class:`~uvm_reporting.errors.BadUserInput`.

The documented format lives in ``docs/report-definition.md``.
"""
