"""Dashboard benchmark (issue 5): does the page cost the same at 100 and 10,000 tenants?

For each fleet size, a throwaway SQLite database gets that many tenants with ten finished
verifications each (plus one open verification for every tenth tenant, so the "verifying"
badge and the progress line have work to do). The dashboard is rendered as a signed-in admin
with Django's test client — the whole stack: middleware, session, permissions, template —
and this prints the queries per page and the median page time for each size, and the ratio
of the medians, for the default view and the "needs attention" view sorted by last check.
Targets: the same query count, ratio ≤ 1.3 for both. The last line is machine-readable:
`figures: queries_small=… queries_large=… ratio=… attention_ratio=…`.

    .venv/bin/python bench/dashboard.py [--sizes 100 10000] [--runs 30]

No Entra is involved: the dashboard reads the database only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOME_TENANT = "7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17"
PORTAL_APP = "c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30"
MI_CLIENT_ID = "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2"
VERIFICATIONS_PER_TENANT = 10


def configure_django(database_url: str) -> None:
    """The portal's own settings module, configured by environment as in production (a
    first database; each size switches to its own file below)."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "mssp_portal.settings",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "DATABASE_URL": database_url,
            "ENTRA_CLOUD": "sandbox",
            "ENTRA_HOME_TENANT_ID": HOME_TENANT,
            "ENTRA_APP_CLIENT_ID": PORTAL_APP,
            "ENTRA_MANAGED_IDENTITY_CLIENT_ID": MI_CLIENT_ID,
            "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django
    from django.conf import settings

    settings.DATABASES["default"]["OPTIONS"]["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    django.setup()
    # No collectstatic in a throwaway run: plain static URLs instead of the manifest's.
    settings.STORAGES["staticfiles"]["BACKEND"] = (
        "django.contrib.staticfiles.storage.StaticFilesStorage"
    )


def use_database(path: Path) -> None:
    """Point the default connection at a fresh SQLite file and create the tables."""
    from django.core.management import call_command
    from django.db import connections

    connections["default"].close()
    connections["default"].settings_dict["NAME"] = str(path)
    call_command("migrate", verbosity=0)


def populate(size: int) -> None:
    from django.utils import timezone

    from tenants.models import Tenant, Verification

    now = timezone.now()
    statuses = Tenant.Status.values
    tenants = Tenant.objects.bulk_create(
        (
            Tenant(
                tenant_id=uuid.uuid5(uuid.NAMESPACE_URL, f"bench-dashboard-{i}"),
                display_name=f"Customer {i:05d}",
                primary_domain=f"customer{i:05d}.example",
                cloud="sandbox",
                access_profile="defender-xdr-readonly",
                status=statuses[i % len(statuses)],
                diagnosis="resource_not_provisioned" if i % 5 == 1 else "",
                stale_since=now if i % 17 == 0 else None,
                last_checked_at=now - timedelta(minutes=i % 1440),
            )
            for i in range(size)
        ),
        batch_size=2000,
    )
    tenants = list(Tenant.objects.order_by("pk"))
    done = (
        Verification(
            tenant=tenant,
            trigger=Verification.Trigger.SCHEDULE,
            state=Verification.State.DONE,
            outcome=Verification.Outcome.VERIFIED,
            created_at=now - timedelta(hours=h),
            started_at=now - timedelta(hours=h),
            finished_at=now - timedelta(hours=h) + timedelta(seconds=2),
            results={"graph": {"token": "ok", "probe": {"status": 200, "ok": True}}},
        )
        for tenant in tenants
        for h in range(1, VERIFICATIONS_PER_TENANT + 1)
    )
    Verification.objects.bulk_create(done, batch_size=5000)
    Verification.objects.bulk_create(
        (
            Verification(tenant=tenant, trigger=Verification.Trigger.MANUAL)
            for tenant in tenants[::10]
        ),
        batch_size=5000,
    )


def admin_client() -> object:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts import roles
    from accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT

    user = get_user_model().objects.create(username="admin@fabrikam-mssp.example")
    roles.apply(user, [roles.ADMIN_ROLE])
    client = Client()
    client.force_login(user, backend="accounts.backends.ThrottledModelBackend")
    session = client.session
    session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = int(time.time())
    session.save()
    return client


def measure(client: object, url: str, runs: int) -> tuple[int, float, int]:
    """(queries per page, median seconds per page, rows shown) over `runs` renders."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm: templates compiled, session and permission caches
    times = []
    queries = set()
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        queries.add(len(captured.captured_queries))
    rows = response.content.decode().count('name="tenant" value=')
    if len(queries) != 1:
        raise SystemExit(f"the query count varied between renders: {sorted(queries)}")
    return queries.pop(), statistics.median(times), rows


ATTENTION_QUERY = "status=attention&sort=-checked"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 10_000])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    configure_django(f"sqlite:///{workdir / 'setup.sqlite3'}")
    from django.urls import reverse

    views = {
        "default": reverse("console:dashboard"),
        "attention": reverse("console:dashboard") + "?" + ATTENTION_QUERY,
    }
    figures: dict[str, list[tuple[int, int, float]]] = {name: [] for name in views}
    for size in args.sizes:
        use_database(workdir / f"dashboard-{size}.sqlite3")
        started = time.perf_counter()
        populate(size)
        setup = time.perf_counter() - started
        client = admin_client()
        for name, url in views.items():
            queries, median, rows = measure(client, url, args.runs)
            figures[name].append((size, queries, median))
            print(
                f"{name:>9} view, {size:>6} tenants "
                f"({size * VERIFICATIONS_PER_TENANT + size // 10} verifications, built in "
                f"{setup:.1f} s): {queries} queries per page, median {median * 1000:.1f} ms "
                f"over {args.runs} renders, {rows} rows on the page"
            )
    ratios = {}
    for name, ((small, q_small, t_small), (large, q_large, t_large)) in figures.items():
        ratios[name] = t_large / t_small
        print(
            f"{name} view ({views[name]}): queries {q_small} at {small}, {q_large} at {large} "
            f"(target: equal); median ratio {large}/{small}: {ratios[name]:.2f} (target ≤ 1.3)"
        )
    (_, q_small, _), (_, q_large, _) = figures["default"]
    same = all(a[1] == b[1] for a, b in figures.values())
    print(
        f"figures: queries_small={q_small} queries_large={q_large} "
        f"ratio={ratios['default']:.2f} attention_ratio={ratios['attention']:.2f}"
    )
    return 0 if same and max(ratios.values()) <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
