#!/usr/bin/env bash
# `make bench`: every benchmark of the README's Performance section, each ending with its
# `figures:` line. The PostgreSQL ones run on a throwaway server started as `make test`
# starts one (never as root). A benchmark that misses its target does not stop the others;
# the exit status says whether all met theirs.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/postgres" ] || { echo "no PostgreSQL server binaries (make test installs them)"; exit 1; }
. scripts/throwaway-pg.sh
pg() { as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "$1" >/dev/null; }
pg "CREATE DATABASE fleet"
pg "CREATE DATABASE burst"
url="postgres://postgres@127.0.0.1:$pg_port"

status=0
run() { echo "== $*"; "$@" || status=1; }
date -u "+%Y-%m-%d %H:%M UTC, $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
run python bench/verify_fleet.py
run python bench/verify_fleet.py --profile graph-reporting
run python bench/verify_fleet.py --tenants 100
run python bench/verify_fleet.py --workers 4 --database-url "$url/fleet"
run python bench/consent_latency.py
run python bench/consent_burst.py --database-url "$url/burst"
run python bench/dashboard.py
run python bench/import_preview.py
exit $status
