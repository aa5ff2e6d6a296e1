"""The deployment's token-signing key: an EC P-256 private key kept as a PEM file.

The first start creates the key; later starts (and other processes sharing the data folder)
load the same file, so tokens stay valid across restarts. The key id is the key's RFC 7638
JWK thumbprint, so it is stable and needs no bookkeeping.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from uvm_reporting.errors import UvmReportingError

ALGORITHM = "ES256"
CURVE = "P-256"


class SigningKeyError(UvmReportingError):
    """The signing key file exists but cannot be used."""


def load_or_create_signing_key(path: Path) -> ECKey:
    """The private key in ``path``, created (mode 0600) when the file does not exist yet."""
    if not path.exists():
        _create_key_file(path)
    return _load_key_file(path)


def public_jwks(keys: Iterable[ECKey]) -> dict[str, Any]:
    """A JWK Set (RFC 7517 §5) with the public half of each key, for ``/.well-known/jwks.json``."""
    return {"keys": [public_jwk(key) for key in keys]}


def public_jwk(key: ECKey) -> dict[str, Any]:
    """The public JWK of ``key``: ``kty``, ``crv``, ``x``, ``y``, ``kid``, ``alg``, ``use``."""
    public = key.as_dict(private=False)
    # Build the dict from named members only, so a private member can never slip through.
    return {
        "kty": public["kty"],
        "crv": public["crv"],
        "x": public["x"],
        "y": public["y"],
        "kid": key.thumbprint(),
        "alg": ALGORITHM,
        "use": "sig",
    }


def _load_key_file(path: Path) -> ECKey:
    try:
        pem = path.read_bytes()
        key = ECKey.import_key(pem)
    except (OSError, JoseError, ValueError, TypeError) as error:
        raise SigningKeyError(f"The token signing key {path} is not a readable PEM EC key: {error}") from error
    if not key.is_private or key.curve_name != CURVE:
        raise SigningKeyError(f"The token signing key {path} must be an EC {CURVE} private key.")
    # Reimport with the parameters the JWKS publishes, so tokens and JWKS agree on the kid.
    return ECKey.import_key(pem, {"kid": key.thumbprint(), "alg": ALGORITHM, "use": "sig"})


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = ECKey.generate_key(CURVE).as_pem(private=True)
    # mkstemp creates the file with mode 0600 before anything is written to it.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            # A hard link publishes the complete file only if none exists, so two processes
            # starting together keep whichever key was written first instead of each its own.
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:
            # The file system has no hard links: fall back to an atomic rename.
            Path(temporary).replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
