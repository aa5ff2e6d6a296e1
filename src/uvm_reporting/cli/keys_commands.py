"""`uvm-reporting keys ...`: rotate and list the token-signing and download-link keys.

Every process of the deployment reads the keys folder again within
``UVM_REPORTING_KEY_RELOAD_SECONDS``, so a rotation needs no restart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from uvm_reporting.application.audit import AuditLog, operator_name
from uvm_reporting.auth.signing_keys import token_key_ring
from uvm_reporting.cli import context
from uvm_reporting.cli.output import JsonOption, emit, reports_errors
from uvm_reporting.domain.audit import Action, Actor, AuditEvent
from uvm_reporting.domain.timestamps import format_utc
from uvm_reporting.key_ring import KeyRing, RingKey
from uvm_reporting.storage.download_links import link_key_ring

keys_app = typer.Typer(help="Rotate and list the token-signing and download-link keys.", no_args_is_help=True)


class Ring(StrEnum):
    tokens = "tokens"
    links = "links"


RingOption = Annotated[
    list[Ring] | None,
    typer.Option("--only", help="Only this key ring (tokens: access-token signing; links: download links)."),
]


def _rings(only: list[Ring] | None) -> dict[Ring, KeyRing[Any]]:
    settings = context.settings()
    rings: dict[Ring, KeyRing[Any]] = {}
    if not only or Ring.tokens in only:
        rings[Ring.tokens] = token_key_ring(settings)
    if not only or Ring.links in only:
        rings[Ring.links] = link_key_ring(settings)
    return rings


@keys_app.command("rotate")
@reports_errors
def rotate(only: RingOption = None, as_json: bool = JsonOption) -> None:
    """Make new keys that sign from now on; older keys verify until what they signed has expired.

    Keys retired by now are deleted. Every process picks the new keys up within
    UVM_REPORTING_KEY_RELOAD_SECONDS, without a restart.
    """
    result: dict[str, Any] = {}
    lines = []
    audit = AuditLog(context.database())
    for name, ring in _rings(only).items():
        rotation = ring.rotate()
        # A deployment's event (no account): `audit list --deployment` shows it.
        audit.record(
            AuditEvent(
                None, Action.KEY_ROTATED, Actor.operator(operator_name()), f"{name}_key", rotation.created.key_id
            )
        )
        now = time.time()
        older = [key for key in ring.verifying(now) if key.key_id != rotation.created.key_id]
        result[name] = {
            "key_id": rotation.created.key_id,
            "file": str(rotation.created.path),
            "still_verifying": [_key_json(key, now) for key in older],
            "deleted": [str(path) for path in rotation.removed],
        }
        lines.append(f"{ring.kind.name}: key {rotation.created.key_id} signs from now on ({rotation.created.path}).")
        lines += [f"  {key.key_id} verifies until {_until(key)}" for key in older]
        lines += [f"  deleted retired key file {path}" for path in rotation.removed]
    reload_seconds = context.settings().key_reload_seconds
    lines.append(f"Every process uses the new keys within {reload_seconds:g} seconds.")
    emit(result, as_json=as_json, text="\n".join(lines))


@keys_app.command("list")
@reports_errors
def list_(only: RingOption = None, as_json: bool = JsonOption) -> None:
    """List the keys of each ring: which signs, which still verify and until when, which are retired."""
    now = time.time()
    result: dict[str, Any] = {}
    lines = []
    for name, ring in _rings(only).items():
        keys = ring.all_keys()
        result[name] = [_key_json(key, now) for key in keys]
        lines.append(f"{ring.kind.name} keys in {ring.folder}:" if keys else f"{ring.kind.name}: no keys yet")
        lines += [f"  {key.key_id}  made {key.created_text}  {_state(key, now)}  {key.path}" for key in keys]
    emit(result, as_json=as_json, text="\n".join(lines))


def _state(key: RingKey[Any], now: float) -> str:
    if key.retires_at is None:
        return "signing"
    if key.retired(now):
        return "retired"
    return "verifying"


def _until(key: RingKey[Any]) -> str:
    assert key.retires_at is not None
    return format_utc(datetime.fromtimestamp(key.retires_at, UTC))


def _key_json(key: RingKey[Any], now: float) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "state": _state(key, now),
        "made": key.created_text,
        "generated": key.generated,
        "verifies_until": None if key.retires_at is None else _until(key),
        "file": str(key.path),
    }
