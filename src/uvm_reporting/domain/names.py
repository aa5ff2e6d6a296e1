"""How a report's name becomes part of a file name or an object key."""

from __future__ import annotations

import re

REPORT_NAME_SLUG_LENGTH = 64
DOWNLOAD_SLUG_LENGTH = 80


def report_name_slug(name: str, *, download: bool = False) -> str:
    """``name`` as a file-name part; "report" when nothing of it is left.

    By default (the object keys of scheduled deliveries) runs of other characters than
    [A-Za-z0-9._-] become "-" and case is kept, so a customer's key names read as the report's.
    With ``download`` (the name a browser saves a download under) only letters and digits stay,
    in lower case: the two differ on purpose, as both are names users already have.
    """
    if download:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:DOWNLOAD_SLUG_LENGTH]
    else:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
        slug = slug[:REPORT_NAME_SLUG_LENGTH].rstrip("-.")
    return slug or "report"
