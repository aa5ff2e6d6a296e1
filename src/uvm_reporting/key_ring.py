"""Key rings: the keys of one purpose (token signing, download links) as files in one folder.

Every process of a deployment reads the same folder, so a rotation made by one command reaches
all of them without a restart::

    <keys dir>/token-signing/20261207T225800.123456Z.pem   a key made by `uvm-reporting keys rotate`
    <keys dir>/token-signing/generated.pem                 the key made at first start (development)

The newest key signs. An older key keeps verifying for ``grace_seconds`` after the key that
followed it was made (the lifetime of what it signed, plus the reload interval during which
other processes may still have signed with it); after that it is retired: no longer trusted,
and deleted by the next rotation.

Each process reads the folder again at most every ``reload_seconds``, and when asked for a
key id it does not know (at most once per second, so junk ids cannot make it read the folder
on every request). Key files must be private (0600) and the folder must not be writable by
others: otherwise the ring refuses to load, with the ``chmod`` that fixes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from uvm_reporting.errors import UvmReportingError
from uvm_reporting.private_files import make_private_folder, mode_text, others_can_access

log = logging.getLogger(__name__)

K = TypeVar("K")

GENERATED_STEM = "generated"
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_UNKNOWN_ID_RELOAD_SECONDS = 1.0


class KeyFileError(UvmReportingError):
    """A key file or folder cannot be used; the message says how to fix it."""

    code = "KEY_FILE_REFUSED"


@dataclass(frozen=True, slots=True)
class KeyKind(Generic[K]):
    """What a ring holds: how its keys are named, made and read."""

    name: str
    """For messages: "token-signing", "download-link"."""
    suffix: str
    generate: Callable[[], bytes]
    load: Callable[[bytes, Path], tuple[K, str]]
    """The key in a file's bytes and its key id; raises KeyFileError when unusable."""


@dataclass(frozen=True, slots=True)
class RingKey(Generic[K]):
    key: K = field(repr=False)
    key_id: str
    path: Path | None
    created_at: float
    """Unix time the key was made; 0 for a key generated at start-up or the legacy file."""
    generated: bool
    """Made implicitly (at first start, or the single key file of earlier versions)."""
    retires_at: float | None = None
    """When it stops verifying; None while it is the signing key."""

    def retired(self, at: float) -> bool:
        return self.retires_at is not None and at >= self.retires_at

    @property
    def created_text(self) -> str:
        return "at first start" if self.generated else _format_time(self.created_at)


@dataclass(frozen=True, slots=True)
class Rotation(Generic[K]):
    created: RingKey[K]
    removed: list[Path]


class KeyRing(Generic[K]):
    """The keys of one kind in ``folder`` (plus ``legacy_file``, the one key of earlier versions)."""

    def __init__(
        self,
        folder: Path | None,
        kind: KeyKind[K],
        *,
        grace_seconds: float,
        reload_seconds: float = 10.0,
        legacy_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.kind = kind
        self.grace_seconds = grace_seconds
        self.reload_seconds = reload_seconds
        self.legacy_file = legacy_file
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: dict[Path, RingKey[K]] = {}
        self._keys: list[RingKey[K]] = []
        self._loaded_at = -1e18
        self._unknown_reload_at = -1e18
        if folder is not None:
            self._check_folder(folder)
            self.reload(strict=True)

    def ready_to_sign(self, *, generate_missing: bool) -> KeyRing[K]:
        """Make sure the ring has a key to sign with: generate one if allowed, else refuse an
        empty ring or a generated signing key (keys must then come from `keys rotate`)."""
        if self.folder is None:
            return self
        rotate = "Create one with `uvm-reporting keys rotate`"
        if not self._keys:
            if not generate_missing:
                raise KeyFileError(f"There is no {self.kind.name} key in {self.folder}. {rotate}.")
            self._generate_first()
            self.reload(strict=True)
        newest = self._keys[-1]
        if newest.generated and not generate_missing:
            raise KeyFileError(
                f"The {self.kind.name} key {newest.path} was made automatically at a first start, which this "
                f"profile does not accept (UVM_REPORTING_GENERATE_KEYS). {rotate}: the new key signs at once, "
                "and this one keeps verifying until what it signed has expired."
            )
        return self

    @classmethod
    def fixed(cls, key: K, key_id: str, kind: KeyKind[K]) -> KeyRing[K]:
        """A ring of one key held in memory (tools and tests that need no folder)."""
        ring = cls(None, kind, grace_seconds=0, reload_seconds=float("inf"))
        ring._keys = [RingKey(key, key_id, None, 0.0, generated=False)]
        return ring

    # -- reading ------------------------------------------------------------------------------

    def signing(self) -> RingKey[K]:
        """The key that signs from now on: the newest."""
        self._reload_if_due()
        return self._keys[-1]

    def find(self, key_id: str, at: float | None = None) -> RingKey[K] | None:
        """The key ``key_id`` if it still verifies at ``at`` (default: now)."""
        self._reload_if_due()
        found = self._lookup(key_id)
        if found is None and self.folder is not None:
            now = time.monotonic()
            if now - self._unknown_reload_at >= _UNKNOWN_ID_RELOAD_SECONDS:
                # A key rotated in by another process: read the folder again.
                self._unknown_reload_at = now
                self.reload()
                found = self._lookup(key_id)
        if found is None or found.retired(self._clock() if at is None else at):
            return None
        return found

    def verifying(self, at: float | None = None) -> list[RingKey[K]]:
        """Every key that still verifies, oldest first (the JWKS lists these)."""
        self._reload_if_due()
        moment = self._clock() if at is None else at
        return [key for key in self._keys if not key.retired(moment)]

    def all_keys(self) -> list[RingKey[K]]:
        """Every key in the folder, retired ones included, oldest first."""
        self.reload()
        return list(self._keys)

    def legacy(self) -> RingKey[K] | None:
        """The key of ``legacy_file`` (for links issued before links named their key); a fixed
        ring's one key."""
        self._reload_if_due()
        return next((key for key in self._keys if key.path == self.legacy_file), None)

    # -- changing -----------------------------------------------------------------------------

    def rotate(self) -> Rotation[K]:
        """Make a new key that signs from now on; delete the files of keys retired by now."""
        if self.folder is None:
            raise KeyFileError(f"this {self.kind.name} key ring has no folder to rotate in")
        make_private_folder(self.folder)
        created_at = self._clock()
        while True:
            name = f"{_format_time(created_at)}.{self.kind.suffix}"
            if _publish(self.folder / name, self.kind.generate()):
                break
            created_at += 1e-6  # two rotations in one microsecond
        self.reload(strict=True)
        created = next(key for key in self._keys if key.path == self.folder / name)
        removed = []
        now = self._clock()
        for key in self._keys:
            if key.retired(now) and key.path is not None:
                key.path.unlink(missing_ok=True)
                removed.append(key.path)
        if removed:
            self.reload()
        return Rotation(created, removed)

    def reload(self, *, strict: bool = False) -> None:
        """Read the folder again: new files are loaded, deleted ones dropped."""
        if self.folder is None:
            return
        with self._lock:
            self._loaded_at = time.monotonic()
            paths = []
            if self.folder.is_dir():
                paths = [path for path in self.folder.iterdir() if _created_at(path.name, self.kind.suffix) is not None]
            if self.legacy_file is not None and self.legacy_file.is_file():
                paths.append(self.legacy_file)
            loaded: dict[Path, RingKey[K]] = {}
            for path in paths:
                known = self._loaded.get(path)
                if known is None:
                    try:
                        known = self._load(path)
                    except (KeyFileError, OSError) as error:
                        if strict:
                            raise
                        log.error("key file %s skipped: %s", path, error)
                        continue
                loaded[path] = known
            if not loaded and self._keys and not strict:
                # Every key file vanished (a mount gone, files moved): keep signing with what we
                # have rather than fail every request; a restart reports it.
                log.error("no usable key file in %s any more; keeping the keys read before", self.folder)
                return
            self._loaded = loaded
            ordered = sorted(loaded.values(), key=lambda key: (key.created_at, key.path or Path()))
            self._keys = [
                replace(key, retires_at=None if successor is None else successor.created_at + self.grace_seconds)
                for key, successor in zip(ordered, [*ordered[1:], None][: len(ordered)], strict=True)
            ]

    # -- inside -------------------------------------------------------------------------------

    def _reload_if_due(self) -> None:
        if self.folder is not None and time.monotonic() - self._loaded_at >= self.reload_seconds:
            self.reload()

    def _lookup(self, key_id: str) -> RingKey[K] | None:
        return next((key for key in self._keys if key.key_id == key_id), None)

    def _load(self, path: Path) -> RingKey[K]:
        shared = others_can_access(path)
        if shared:
            raise KeyFileError(
                f"The {self.kind.name} key file {path} can be read by other users (mode {mode_text(path)}). "
                f"Make it private: chmod 600 {path}"
            )
        try:
            content = path.read_bytes()
        except OSError as error:
            raise KeyFileError(
                f"The {self.kind.name} key file {path} cannot be read ({error.strerror}): key files must belong to "
                "the user that runs uvm-reporting (run `keys rotate` as that user)."
            ) from error
        key, key_id = self.kind.load(content, path)
        created_at = _created_at(path.name, self.kind.suffix) if path != self.legacy_file else None
        return RingKey(key, key_id, path, created_at or 0.0, generated=path == self.legacy_file or created_at == 0.0)

    def _check_folder(self, folder: Path) -> None:
        for checked in (folder, folder.parent):
            if checked.is_dir() and others_can_access(checked) & 0o022:
                raise KeyFileError(
                    f"The key folder {checked} can be written by other users (mode {mode_text(checked)}), who could "
                    f"add keys of their own. Make it private: chmod 700 {checked}"
                )

    def _generate_first(self) -> None:
        assert self.folder is not None
        make_private_folder(self.folder)
        # A fixed name: processes starting together keep whichever key was written first.
        _publish(self.folder / f"{GENERATED_STEM}.{self.kind.suffix}", self.kind.generate())


def _publish(path: Path, content: bytes) -> bool:
    """Write ``content`` to a new private file at ``path``; False when ``path`` already exists."""
    # mkstemp creates the file with mode 0600 before anything is written to it.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            # A hard link publishes the complete file only if none exists yet.
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()


def _created_at(name: str, suffix: str) -> float | None:
    """When the key in file ``name`` was made (0 for the generated key); None: not a key file."""
    if name == f"{GENERATED_STEM}.{suffix}":
        return 0.0
    match = re.fullmatch(rf"(\d{{8}}T\d{{6}}\.\d{{6}}Z)\.{re.escape(suffix)}", name)
    if match is None:
        return None
    return datetime.strptime(match[1], _TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def _format_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(_TIME_FORMAT)
