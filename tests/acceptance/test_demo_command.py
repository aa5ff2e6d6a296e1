"""The README's run command: ``uvm-reporting demo`` prints curl lines that work as printed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.cli import running_server


def test_the_printed_curl_lines_work(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir, "demo", "--findings", "150") as (base_url, _):
        printed = (tmp_path / f"server-{base_url.rsplit(':', 1)[1]}.log").read_text()
        blocks = re.findall(r"^\d\. .*?\n(.*?)\n\n", printed, flags=re.DOTALL | re.MULTILINE)
        assert len(blocks) == 3, printed
        token_line, process_line, status_line = blocks
        assert base_url in token_line
        script = "\n".join(
            [
                "set -euo pipefail",
                token_line,
                process_line,
                "for i in $(seq 1 300); do",
                f"  out=$({status_line})",
                '  case "$out" in *\'"status":"Running"\'*) sleep 0.1;; *) break;; esac',
                "done",
                'echo "$out"',
            ]
        )
        completed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90, check=False)
    assert completed.returncode == 0, completed.stderr
    assert '"status":"Completed"' in completed.stdout
    assert '"rowCount":150' in completed.stdout
    assert f'"presignedUrl":"{base_url}/downloads/' in completed.stdout
