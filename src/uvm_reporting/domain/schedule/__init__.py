"""A report's scheduled export ("Schedule Export"): what to export, where to, and when.

Pure, no I/O (time zones come from the system's tz database through :mod:`zoneinfo`):

* :mod:`.settings`: the parsed settings and the rules' constants;
* :mod:`.validation`: :func:`~.validation.parse_schedule` checks a ``schedule`` object and
  names every problem with its location (``schedule.delivery.bucket``), as a definition's are;
* :mod:`.fire_times`: when a schedule fires, on its time zone's wall clock (DST included);
* :mod:`.object_keys`: where a run delivers its file.

The documented format lives in ``docs/report-definition.md`` ("Scheduled export").
"""
