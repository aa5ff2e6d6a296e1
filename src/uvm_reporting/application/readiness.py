"""Whether this process can serve: its database answers and its result storage takes files.

Each check raises when it fails; the caller (``/readyz``) bounds how long it waits for them.
A storage of another kind (a test's fake) has nothing to check.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3.result_storage import S3ResultStorage


def check_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).scalar_one()


def check_storage(storage: ResultStorage, timeout_seconds: float) -> None:
    if isinstance(storage, LocalFolderStorage):
        storage.check_writable()
    elif isinstance(storage, S3ResultStorage):
        storage.check_reachable(timeout_seconds)
