#!/usr/bin/env bash
# `manage.py check --deploy` against production-like settings: only the environment a real
# deployment would set, nothing from .env or the test settings.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=mssp_portal.settings
export DEBUG=False
export SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
export ALLOWED_HOSTS=portal.example.com
export PORTAL_BASE_URL=https://portal.example.com
export DATABASE_URL=sqlite:////tmp/check-deploy.sqlite3
export ENTRA_CLOUD=public
export ENTRA_HOME_TENANT_ID=00000000-0000-0000-0000-000000000001
export ENTRA_APP_CLIENT_ID=00000000-0000-0000-0000-000000000002
export ENTRA_MANAGED_IDENTITY_CLIENT_ID=00000000-0000-0000-0000-000000000003
python manage.py check --deploy --fail-level WARNING
