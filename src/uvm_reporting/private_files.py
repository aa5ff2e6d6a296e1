"""Files only this deployment's user may read: folders 0700, files 0600.

Keys, the SQLite database and result files hold secrets or customers' data; they are created
private from the first byte (never created open and narrowed afterwards).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_private_folder(path: Path) -> Path:
    """Create ``path`` and each missing parent with mode 0700; an existing folder is left as it is."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        # mkdir's mode is narrowed by the umask but never widened: set it exactly.
        folder.chmod(FOLDER_MODE)
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (its mode is then left alone)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def open_private_for_write(path: Path) -> int:
    """A new file at ``path`` (which must not exist), mode 0600, open for writing: its descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def others_can_access(path: Path) -> int:
    """The permission bits of ``path`` given to its group or to others (0 when private)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def mode_text(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"
