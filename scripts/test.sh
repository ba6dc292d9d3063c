#!/usr/bin/env bash
# `make test`: install what is missing, start a throwaway PostgreSQL, lint, check, and run the
# suite on PostgreSQL and on SQLite. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE=tests.settings

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Debian packages: Chromium for the browser tests, a PostgreSQL server -----------------
[ -x /usr/bin/chromium ] || { echo "installing chromium"; apt_install chromium; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
  echo "installing postgresql"
  apt_install postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# --- A throwaway PostgreSQL server (never as root) ---------------------------------------
. scripts/throwaway-pg.sh
postgres_url="postgres://postgres@127.0.0.1:$pg_port/mssp_portal"

# --- Lint, migrations, deployment checks -------------------------------------------------
echo "== ruff"
ruff check .
ruff format --check .
echo "== import layers"
lint-imports --no-cache
echo "== migrations"
python manage.py makemigrations --check --dry-run
echo "== check --deploy (production settings)"
env -i PATH="$PATH" HOME="${HOME:-/root}" bash scripts/check-deploy.sh

# --- The suite, on both databases --------------------------------------------------------
mkdir -p test-artifacts
echo "== pytest on PostgreSQL"
DATABASE_URL="$postgres_url" pytest "$@"
echo "== pytest on SQLite"
DATABASE_URL="sqlite:///$pg_dir/test.sqlite3" pytest "$@"
