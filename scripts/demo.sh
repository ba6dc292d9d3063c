#!/usr/bin/env bash
# `make demo`: entra_sandbox with its demo scenario, the portal on http://localhost:8000, the
# task worker and the scheduler, one invitation per demo customer. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p var/sandbox

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# --- the sandbox Entra -------------------------------------------------------------------
rm -f var/sandbox/sandbox.env
python -m entra_sandbox serve --scenario entra_sandbox/scenarios/demo.toml \
  --port 8443 --login-port 8444 --identity-port 8445 --state-dir var/sandbox \
  > var/sandbox.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s var/sandbox/sandbox.env ] && break; sleep 0.1; done
[ -s var/sandbox/sandbox.env ] || { cat var/sandbox.log; echo "the sandbox did not start"; exit 1; }

# --- the portal's configuration: the sandbox's variables plus the demo tenant's ids -------
[ -f var/secret_key ] || python -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
set -a
# shellcheck disable=SC1091
. var/sandbox/sandbox.env
DEBUG=True
SECRET_KEY=$(cat var/secret_key)
DATABASE_URL="sqlite:///$PWD/var/demo.sqlite3"
PORTAL_BASE_URL=http://localhost:8000
ENTRA_CLOUD=sandbox
ENTRA_CA_BUNDLE="$REQUESTS_CA_BUNDLE"
ENTRA_HOME_TENANT_ID=7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17
ENTRA_APP_CLIENT_ID=c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30
ENTRA_APP_DISPLAY_NAME="Fabrikam MSSP Portal"
ENTRA_MANAGED_IDENTITY_CLIENT_ID=5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2
VERIFY_INTERVAL=900
set +a
# The same environment for `make doctor` / `make verify` in another shell.
for name in DEBUG SECRET_KEY DATABASE_URL PORTAL_BASE_URL ENTRA_CLOUD ENTRA_CA_BUNDLE \
            ENTRA_HOME_TENANT_ID ENTRA_APP_CLIENT_ID ENTRA_APP_DISPLAY_NAME ENTRA_MANAGED_IDENTITY_CLIENT_ID \
            VERIFY_INTERVAL $(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' var/sandbox/sandbox.env); do
  printf '%s=%q\n' "$name" "${!name}"
done > var/demo.env

# Setup output (migrations, the invitations' audit lines) goes to a log, not above the banner.
python manage.py migrate --no-input -v 0 >> var/setup.log 2>&1 || { cat var/setup.log; exit 1; }
if [ "$(python manage.py shell -v 0 -c 'from consent.models import Invitation; print(Invitation.objects.count())')" = 0 ]; then
  for customer in "Northwind Traders:northwind.example" "Tailspin Toys:tailspin.example" \
                  "Woodgrove Bank:woodgrove.example" "Litware:litware.example" "Adatum:adatum.example"; do
    python manage.py create_invitation --customer "${customer%%:*}" --tenant "${customer##*:}" \
      --profile full-soc --days 30 >> var/setup.log 2>&1 || { cat var/setup.log; exit 1; }
  done
fi

python manage.py runserver 127.0.0.1:8000 --noreload > var/portal.log 2>&1 &
pids+=($!)
python manage.py db_worker --no-reload --interval 0.1 > var/worker.log 2>&1 &
pids+=($!)
python manage.py run_scheduler > var/scheduler.log 2>&1 &
pids+=($!)

cat <<MSG

MSSP Portal demo is running (logs in var/).

  Staff console   http://localhost:8000/   sign in as admin@fabrikam-mssp.example (admin)
                                            or operator@fabrikam-mssp.example (operator)
  Sandbox Entra   $AZURE_AUTHORITY_HOST   (control API: $SANDBOX_CONTROL_URL)

Invitations to send to the demo customers (open one, grant consent as admin@<domain>):
MSG
python manage.py shell -v 0 -c '
from consent.models import Invitation
from consent.links import invitation_url
for inv in Invitation.objects.usable().order_by("customer_name"):
    print(f"  {inv.customer_name:<20} {invitation_url(inv)}")
'
cat <<MSG

Try: after onboarding Woodgrove, disable the app there and re-verify:
  curl --cacert var/sandbox/ca.pem -X POST $SANDBOX_CONTROL_URL/tenants/4a7c9e2b-6d1f-4b85-a3c0-8e2f5d7b1c96/disable

Ctrl-C stops everything.
MSG
wait
