#!/usr/bin/env bash
# Run every benchmark. Default (or --quick): tiny sizes and one run each, the smoke check that
# the scripts work. --full: the sizes the targets are stated for (hours on a 2-core machine,
# the first time mostly spent generating the 10M-row data set, cached under bench/.data/).
# Exits non-zero when a script failed; a missed target is not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=quick
case "${1:-}" in
  --full) mode=full ;;
  "" | --quick) ;;
  *) echo "usage: bench/run_all.sh [--quick | --full]" >&2; exit 2 ;;
esac

PY=.venv/bin/python
backends=(sqlite)
if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then
  backends+=(postgresql)
else
  echo "PostgreSQL does not answer on 127.0.0.1:5432: skipping the PostgreSQL runs"
fi

failed=()
run() {
  echo
  echo "\$ $PY $*"
  if ! "$PY" "$@"; then
    failed+=("$*")
  fi
}

if [[ $mode == quick ]]; then
  for backend in "${backends[@]}"; do
    run bench/export_speed.py --backend "$backend" --quick --format all
    run bench/queue_latency.py --backend "$backend" --quick
    run bench/queue_fairness.py --backend "$backend" --quick
    run bench/small_reports.py --backend "$backend" --quick
    run bench/process_report_load.py --backend "$backend" --quick
  done
  run bench/export_memory.py --quick --format all
  run bench/status_throughput.py --quick
  run bench/graphql_flood.py --quick
  run bench/xlsx_speed.py --quick
  run bench/idle_rss.py --quick
  run bench/token_flood.py --quick
  run bench/soak.py --quick
else
  for backend in "${backends[@]}"; do
    run bench/export_speed.py --backend "$backend" --rows 1000000 --runs 3 --format all
    run bench/queue_latency.py --backend "$backend" --samples 200 --runs 3
    run bench/queue_fairness.py --backend "$backend" --flood 200 --samples 30 --runs 3
    run bench/small_reports.py --backend "$backend" --rows 100,10000 --runs 7
    run bench/process_report_load.py --backend "$backend" --runs 3
    run bench/soak.py --backend "$backend" --minutes 10
  done
  run bench/export_memory.py --rows 1000000,10000000 --runs 3 --format all
  run bench/status_throughput.py --runs 3
  run bench/graphql_flood.py --runs 3
  run bench/xlsx_speed.py --rows 1000000 --runs 3
  run bench/idle_rss.py --runs 3
  run bench/token_flood.py
fi

echo
if ((${#failed[@]})); then
  echo "FAILED (${#failed[@]}):"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "all benchmarks ran ($mode)"
