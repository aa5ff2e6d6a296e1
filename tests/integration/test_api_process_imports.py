"""An API-only process (``serve --no-workers``) never loads the export stack: validating a
format string needs domain/formats.py only, and the exporter is imported by workers alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import json, sys
from uvm_reporting.api.app import create_app
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings
services = build_services(Settings(data_dir=sys.argv[1]))
create_app(services, run_workers=False)
services.report_runs.process_report  # the use case that validates formats
stack = {"pyarrow", "xlsxwriter", "adbc_driver_manager"}
loaded = sorted(n for n in sys.modules if n.split(".")[0] in stack or n == "uvm_reporting.exports.exporter")
print(json.dumps(loaded))
"""


def test_the_api_process_imports_no_export_stack(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"an API-only process loaded {loaded}"


def test_a_worker_process_does_load_it(tmp_path: Path) -> None:
    """The check above can fail: the same program, once workers are built, sees the stack."""
    program = PROGRAM.replace("create_app(services, run_workers=False)", "services.worker_pool(threads=1)")
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert "uvm_reporting.exports.exporter" in json.loads(done.stdout.strip().splitlines()[-1])
