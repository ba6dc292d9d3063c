"""The dashboard: counts, platform alerts, search/filter/sort/pages, the live partial, a
query count that does not grow with the fleet, and customer text shown as text."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tenants.models import PlatformAlert, Tenant, Verification
from tests.personas import make_tenant

DASHBOARD = reverse("console:dashboard")
LIVE = reverse("console:dashboard_live")
HOSTILE_NAME = '<script>alert(1)</script>"><img src=x onerror=alert(2)>admin\u202egnp.exe'


def _names(response) -> list[str]:
    """The tenant names of the table, in order."""
    return [row["tenant"].display_name for row in response.context["rows"]]


@pytest.fixture
def fleet(db) -> dict[str, Tenant]:
    now = timezone.now()
    return {
        "alpha": make_tenant(
            display_name="Alpha Works",
            primary_domain="alpha.example",
            status=Tenant.Status.VERIFIED,
            status_since=now - timedelta(days=3),
            last_checked_at=now - timedelta(hours=1),
        ),
        "bravo": make_tenant(
            display_name="Bravo Foods",
            primary_domain="bravo.example",
            status=Tenant.Status.INCOMPLETE,
            diagnosis="resource_not_provisioned",
            status_since=now - timedelta(days=1),
            last_checked_at=now - timedelta(hours=3),
        ),
        "charlie": make_tenant(
            display_name="Charlie Air",
            primary_domain="charlie-air.example",
            status=Tenant.Status.NO_ACCESS,
            status_since=now - timedelta(days=2),
            last_checked_at=now - timedelta(hours=2),
        ),
        "delta": make_tenant(
            display_name="Delta Bank",
            primary_domain="deltabank.example",
            status=Tenant.Status.VERIFIED,
            stale_since=now - timedelta(minutes=30),
            status_since=now - timedelta(days=5),
        ),
        "echo": make_tenant(
            display_name="Echo Media",
            primary_domain="echo.example",
            status=Tenant.Status.OFFBOARDED,
            offboarded_at=now,
        ),
    }


# --- Counts and alerts ---------------------------------------------------------------------


def test_it_counts_tenants_per_status(admin_client, fleet):
    response = admin_client.get(DASHBOARD)

    assert response.status_code == 200
    counts = response.context["counts"]
    assert counts["total"] == 5
    assert counts[Tenant.Status.VERIFIED] == 2
    assert counts[Tenant.Status.INCOMPLETE] == 1
    assert counts[Tenant.Status.NO_ACCESS] == 1
    assert counts[Tenant.Status.OFFBOARDED] == 1
    assert counts[Tenant.Status.CONSENT_REPORTED] == 0
    assert counts["stale"] == 1
    body = response.content.decode()
    assert re.search(r'stat-verified[^"]*"[^>]*><span class="stat-value">2</span>', body)
    assert re.search(r'stat-stale[^"]*"[^>]*><span class="stat-value">1</span>', body)


def test_it_lets_operators_read_the_dashboard(operator_client, fleet):
    response = operator_client.get(DASHBOARD)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpha Works" in body
    # Operators read and re-verify their selection; the fleet-wide and admin actions are
    # not offered to them.
    assert "Re-verify selected" in body
    assert reverse("console:reverify_all") not in body
    assert reverse("console:assign_selected") not in body
    assert reverse("console:invitation_create") not in body


def test_it_refuses_staff_without_a_role(outsider_client, fleet):
    assert outsider_client.get(DASHBOARD).status_code == 403
    assert outsider_client.get(LIVE).status_code == 403


def test_it_sends_anonymous_visitors_to_sign_in(client, fleet):
    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_it_answers_405_to_a_post(admin_client, fleet):
    assert admin_client.post(DASHBOARD).status_code == 405
    assert admin_client.post(LIVE).status_code == 405


def test_it_shows_an_open_platform_alert_until_it_is_resolved(admin_client, fleet):
    PlatformAlert.raise_alert(
        "fic_mismatch", "Federated credential does not match", "subject differs"
    )

    body = admin_client.get(DASHBOARD).content.decode()
    assert "Platform problem:" in body
    assert "Federated credential does not match" in body

    PlatformAlert.resolve_open()

    body = admin_client.get(DASHBOARD).content.decode()
    assert "Platform problem:" not in body
    assert "Federated credential does not match" not in body


# --- Search, filter, sort, pages ---------------------------------------------------------------


@pytest.mark.parametrize(
    "q, expected",
    [
        ("bravo", ["Bravo Foods"]),
        ("  BRAVO   ", ["Bravo Foods"]),  # case and blanks do not matter
        ("charlie-air.example", ["Charlie Air"]),
        # Offboarded Echo Media is left out unless asked for ("All, with offboarded").
        (".example", ["Alpha Works", "Bravo Foods", "Charlie Air", "Delta Bank"]),
        ("nothing-like-it", []),
    ],
)
def test_it_searches_by_name_and_domain(admin_client, fleet, q, expected):
    response = admin_client.get(DASHBOARD, {"q": q})

    assert response.status_code == 200
    assert _names(response) == expected


def test_it_searches_by_tenant_id(admin_client, fleet):
    tenant_id = str(fleet["delta"].tenant_id)

    assert _names(admin_client.get(DASHBOARD, {"q": tenant_id})) == ["Delta Bank"]
    assert _names(admin_client.get(DASHBOARD, {"q": tenant_id.upper()})) == ["Delta Bank"]


def test_it_says_so_when_nothing_matches(admin_client, fleet):
    body = admin_client.get(DASHBOARD, {"q": "zzz"}).content.decode()

    assert "No tenants match." in body
    assert "Clear the filters" in body


@pytest.mark.parametrize(
    "status, expected",
    [
        ("verified", ["Alpha Works", "Delta Bank"]),
        ("incomplete", ["Bravo Foods"]),
        ("no_access", ["Charlie Air"]),
        ("offboarded", ["Echo Media"]),
        ("stale", ["Delta Bank"]),
        ("attention", ["Bravo Foods", "Charlie Air", "Delta Bank"]),
    ],
)
def test_it_filters_by_status(admin_client, fleet, status, expected):
    assert _names(admin_client.get(DASHBOARD, {"status": status})) == expected


def test_it_combines_search_and_status(admin_client, fleet):
    response = admin_client.get(DASHBOARD, {"status": "verified", "q": "delta"})

    assert _names(response) == ["Delta Bank"]


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("name", ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
        ("-name", ["Echo", "Delta", "Charlie", "Bravo", "Alpha"]),
        ("domain", ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
        ("status", ["Bravo", "Charlie", "Echo", "Alpha", "Delta"]),  # by value, then name
        ("since", ["Delta", "Alpha", "Charlie", "Bravo", "Echo"]),
        # Never checked counts as the oldest check, on every database.
        ("-checked", ["Alpha", "Charlie", "Bravo"]),
    ],
)
def test_it_sorts(admin_client, fleet, sort, expected):
    response = admin_client.get(DASHBOARD, {"sort": sort, "status": "all"})
    names = [name.split()[0] for name in _names(response)]

    assert names[: len(expected)] == expected


def test_it_sorts_never_checked_tenants_first_when_oldest_first(admin_client, fleet):
    response = admin_client.get(DASHBOARD, {"sort": "checked", "status": "all"})

    names = [name.split()[0] for name in _names(response)]
    assert sorted(names[:2]) == ["Delta", "Echo"]
    assert names[2:] == ["Bravo", "Charlie", "Alpha"]


def test_it_marks_the_current_sort_in_the_header(admin_client, fleet):
    body = admin_client.get(DASHBOARD, {"sort": "-name", "status": "verified"}).content.decode()

    assert 'aria-sort="descending"' in body
    # The header link keeps the filter and flips the direction back.
    assert 'href="?status=verified&amp;sort=name"' in body


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "display_name; DROP TABLE tenants_tenant"},
        {"sort": "password"},
        {"status": "bogus"},
        {"page": "abc"},
        {"page": "-1"},
        {"page": "99999"},
        {"q": "x" * 500},
        {"q": "\x00"},
    ],
)
def test_it_falls_back_cleanly_on_bad_parameters(admin_client, fleet, params):
    response = admin_client.get(DASHBOARD, params)

    assert response.status_code == 200
    assert len(response.context["rows"]) >= 1


def test_it_keeps_a_valid_search_when_the_sort_is_bad(admin_client, fleet):
    """A hand-edited ?sort= falls back to sorting by name; it does not drop the search."""
    response = admin_client.get(DASHBOARD, {"q": "bravo", "sort": "bogus", "status": "nope"})

    assert response.status_code == 200
    assert _names(response) == ["Bravo Foods"]
    assert response.context["sort"] == "name"


def test_it_pages_through_a_large_fleet(admin_client, db):
    for i in range(60):
        make_tenant(display_name=f"Tenant {i:03d}", primary_domain=f"t{i:03d}.example")

    first = admin_client.get(DASHBOARD)
    second = admin_client.get(DASHBOARD, {"page": "2"})
    beyond = admin_client.get(DASHBOARD, {"page": "7"})

    assert _names(first) == [f"Tenant {i:03d}" for i in range(50)]
    assert _names(second) == [f"Tenant {i:03d}" for i in range(50, 60)]
    assert _names(beyond) == _names(second)  # past the end: the last page
    body = first.content.decode()
    assert "Page 1 of 2 · 60 total" in body
    assert 'href="?page=2" rel="next"' in body


def test_it_keeps_the_filters_in_the_page_links(admin_client, db):
    for i in range(55):
        make_tenant(display_name=f"Tenant {i:03d}", status=Tenant.Status.VERIFIED)

    body = admin_client.get(DASHBOARD, {"status": "verified", "sort": "-name"}).content.decode()

    assert 'href="?status=verified&amp;sort=-name&amp;page=2"' in body


def test_it_marks_stale_tenants(admin_client, fleet):
    body = admin_client.get(DASHBOARD, {"q": "delta"}).content.decode()

    assert 'class="badge badge-stale"' in body
    other = admin_client.get(DASHBOARD, {"q": "alpha"}).content.decode()
    assert 'class="badge badge-stale"' not in other


# --- The live partial ----------------------------------------------------------------------


def test_it_renders_the_live_partial_alone(admin_client, fleet):
    response = admin_client.get(LIVE)

    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="dashboard-live"')
    assert "<html" not in body
    assert 'data-live-active="0"' in body
    assert "Alpha Works" in body


def test_it_reports_running_verifications_in_the_live_partial(admin_client, fleet):
    Verification.objects.create(
        tenant=fleet["alpha"],
        trigger=Verification.Trigger.MANUAL,
        state=Verification.State.RUNNING,
        started_at=timezone.now(),
    )
    Verification.objects.create(tenant=fleet["bravo"], trigger=Verification.Trigger.SCHEDULE)
    Verification.objects.create(tenant=fleet["charlie"], trigger=Verification.Trigger.SCHEDULE)

    response = admin_client.get(LIVE, {"q": "alpha"})

    body = response.content.decode()
    assert 'data-live-active="1"' in body
    assert "Verifying 3 tenants: 1 running, 2 queued." in body
    # The tenant row itself says it is being verified; the filter reaches the partial.
    assert body.count("badge-running") == 1
    assert _names(response) == ["Alpha Works"]


def test_it_points_the_live_region_at_the_same_filters(admin_client, fleet):
    body = admin_client.get(DASHBOARD, {"status": "verified", "q": "a"}).content.decode()

    assert f'data-live-url="{LIVE}?status=verified&amp;q=a"' in body


# --- Query count -------------------------------------------------------------------------------


def _fleet_with_history(size: int) -> None:
    now = timezone.now()
    statuses = Tenant.Status.values
    for i in range(size):
        tenant = make_tenant(
            display_name=f"Customer {i:03d}",
            status=statuses[i % len(statuses)],
            diagnosis="resource_not_provisioned" if i % 3 else "",
            stale_since=now if i % 7 == 0 else None,
        )
        Verification.objects.bulk_create(
            Verification(
                tenant=tenant,
                trigger=Verification.Trigger.SCHEDULE,
                state=Verification.State.DONE,
                outcome=Verification.Outcome.VERIFIED,
                created_at=now - timedelta(hours=h),
                finished_at=now - timedelta(hours=h),
            )
            for h in range(1, 4)
        )
        if i % 4 == 0:
            Verification.objects.create(tenant=tenant, trigger=Verification.Trigger.MANUAL)


def _queries(client, url: str, params: dict[str, str] | None = None) -> int:
    client.get(url, params)  # warm: session, permissions caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("url", [DASHBOARD, LIVE])
def test_it_makes_as_many_queries_for_60_tenants_as_for_5(admin_client, db, url):
    _fleet_with_history(5)
    small = _queries(admin_client, url)
    _fleet_with_history(55)
    large = _queries(admin_client, url)
    large_filtered = _queries(admin_client, url, {"status": "attention", "sort": "-checked"})
    second_page = _queries(admin_client, url, {"page": "2"})

    assert Tenant.objects.count() == 60
    assert small == large == large_filtered == second_page


# --- Customer text -----------------------------------------------------------------------------


def test_it_escapes_customer_text_on_the_dashboard_and_the_tenant_page(admin_client, db):
    tenant = make_tenant(
        uuid.uuid4(),
        display_name=HOSTILE_NAME,
        primary_domain="evil.example\u202e",
        status=Tenant.Status.VERIFIED,
    )

    for url in (DASHBOARD, LIVE, reverse("console:detail", args=[tenant.code])):
        body = admin_client.get(url).content.decode()
        assert "<script>alert(1)" not in body, url
        assert "<img src=x" not in body, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x" in body, url
        # A bidi override in a name must not reorder what follows it (the tenant id, the
        # next column): wherever the name is shown as text, it is isolated in <bdi>.
        # (Attribute values and the window title are strings of their own.)
        shown = 0
        for occurrence in re.finditer("\u202e", body):
            before = body[: occurrence.start()]
            in_tag = before.rfind("<") > before.rfind(">")
            in_title = before.rfind("<title>") > before.rfind("</title>")
            if not (in_tag or in_title):
                shown += 1
                assert before.rfind("<bdi>") > before.rfind("</bdi>"), (url, occurrence.start())
        assert shown >= 1, url


def test_all_counts_and_lists_only_the_tenants_not_offboarded(admin_client, fleet):
    response = admin_client.get(DASHBOARD)

    body = response.content.decode()
    assert response.context["counts"]["active"] == 4
    assert re.search(
        r'<span class="stat-value">4</span><span class="stat-label">All active</span>', body
    )
    assert "Echo Media" not in _names(response)
    assert "Echo Media" in _names(admin_client.get(DASHBOARD, {"status": "all"}))
    assert _names(admin_client.get(DASHBOARD, {"status": "offboarded"})) == ["Echo Media"]


def test_it_explains_consent_reported_and_stale(admin_client, fleet):
    text = " ".join(admin_client.get(DASHBOARD).content.decode().split())

    assert "<dt>Consent reported</dt><dd>Microsoft&rsquo;s redirect said" in text
    assert "<dt>Stale</dt><dd>The latest checks were inconclusive" in text


def test_relative_times_carry_the_absolute_time_on_hover(admin_client, fleet):
    body = admin_client.get(DASHBOARD).content.decode()
    since = fleet["alpha"].status_since

    assert (
        f'<time datetime="{since.isoformat()}" title="{since:%Y-%m-%d %H:%M} UTC">3\xa0days ago'
        in body
    )


def test_the_diagnosis_column_counts_the_other_problems(admin_client, fleet):
    bravo = fleet["bravo"]
    bravo.verifications.create(
        trigger="schedule",
        state="done",
        outcome="incomplete",
        diagnosis="resource_not_provisioned",
        finished_at=timezone.now(),
        results={
            "graph": {"diagnosis": "verified"},
            "defender": {"diagnosis": "resource_not_provisioned"},
            "mde": {"diagnosis": "resource_not_provisioned"},
            "arm": {"diagnosis": "arm_no_subscriptions"},
        },
    )

    body = " ".join(admin_client.get(DASHBOARD).content.decode().split())

    assert (
        'Service not available in the tenant (licence) <span class="muted small">and 2 more</span>'
    ) in body


def test_a_time_under_a_minute_ago_reads_just_now(admin_client, db):
    make_tenant(display_name="Fresh Ltd", status_since=timezone.now())

    body = admin_client.get(DASHBOARD).content.decode()

    assert "just now</time>" in body
    assert "0\xa0minutes ago" not in body
