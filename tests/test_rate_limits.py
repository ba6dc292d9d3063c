"""Junk traffic: per-address rate limits on the customer's consent pages and on staff
sign-in, counted in the shared database cache; the client's address as TRUSTED_PROXY_HOPS
says; and caps on the consent tickets one invitation or one address can open."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from consent.models import ConsentTicket
from mssp_portal.addresses import client_address
from mssp_portal.cache import AtomicDatabaseCache
from tenants.models import Tenant
from tests.conftest import NORTHWIND
from tests.consent.helpers import make_invitation, success

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.254"


@pytest.fixture(autouse=True)
def one_instant():
    """django-ratelimit's windows are fixed (each ends at a set second): all of a test's
    requests fall in one window, wherever the clock is when the test runs."""
    with time_machine.travel(datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC), tick=False):
        yield


def junk_callback() -> str:
    """A callback as a script forges it: a well-formed state nobody issued."""
    return success(secrets.token_urlsafe(32), tenant=NORTHWIND)


def test_it_refuses_a_flood_of_junk_callbacks_from_one_address_only():
    flooder = Client(REMOTE_ADDR="203.0.113.7")
    answers = [flooder.get(junk_callback()).status_code for _ in range(200)]

    assert answers[:30] == [400] * 30  # each one read: an unknown state
    assert set(answers[30:]) == {429}
    refused = flooder.get(junk_callback())
    body = refused.content.decode()
    assert "<h1>Too many requests</h1>" in body
    assert "Wait a minute, then open the link again" in body
    assert "Fabrikam Security" in body
    assert 1 <= int(refused["Retry-After"]) <= 65
    # Another address is still served.
    assert Client(REMOTE_ADDR="203.0.113.8").get(junk_callback()).status_code == 400
    assert Tenant.objects.count() == 0
    assert not AuditEvent.objects.exists()


def test_it_counts_the_address_the_trusted_proxy_appended(settings):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = Client(REMOTE_ADDR=PROXY)
    # The client writes whatever it likes on the left; the proxy appends what it saw.
    answers = [
        proxy.get(junk_callback(), HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7")
        for i in range(31)
    ]
    assert answers[29].status_code == 400
    assert answers[30].status_code == 429
    # Another customer behind the same proxy is not held up.
    other = proxy.get(junk_callback(), HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert other.status_code == 400


def test_it_ignores_forwarded_for_without_trusted_proxies(settings):
    assert settings.TRUSTED_PROXY_HOPS == 0  # the default
    client = Client(REMOTE_ADDR="203.0.113.7")
    answers = [
        client.get(junk_callback(), HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(31)
    ]
    assert answers[-1] == 429


def test_it_limits_the_invitation_page_and_its_button_together():
    invitation = make_invitation()
    client = Client(REMOTE_ADDR="203.0.113.7")
    pages = [client.get(f"/consent/invite/{invitation.code}/").status_code for _ in range(20)]
    assert set(pages) == {200}
    starts = [
        client.post(f"/consent/invite/{invitation.code}/start/").status_code for _ in range(11)
    ]
    assert starts[:10] == [302] * 10 and starts[10] == 429
    assert ConsentTicket.objects.count() == 10


def test_it_caps_the_open_tickets_of_one_invitation(settings):
    invitation = make_invitation()
    # A leaked link, pressed from many addresses.
    answers = [
        Client(REMOTE_ADDR=f"198.51.100.{i}").post(f"/consent/invite/{invitation.code}/start/")
        for i in range(25)
    ]
    assert [a.status_code for a in answers[:20]] == [302] * 20
    refused = answers[20]
    assert refused.status_code == 429
    body = refused.content.decode()
    assert "Too many consent requests are open for this invitation" in body
    assert "The earliest open request expires in about 60 minutes" in body
    assert "tell Fabrikam Security, who can withdraw it" in body
    assert refused["Retry-After"] in {"3599", "3600"}
    assert invitation.tickets.count() == settings.CONSENT_OPEN_TICKETS_LIMIT == 20
    assert AuditEvent.objects.filter(action="consent.started").count() == 20


def test_it_caps_the_consents_one_address_starts(settings):
    settings.RATELIMIT_CONSENT = "1000/m"
    client = Client(REMOTE_ADDR="203.0.113.7")
    answers = []
    for _ in range(3):
        invitation = make_invitation()
        answers += [
            client.post(f"/consent/invite/{invitation.code}/start/").status_code for _ in range(8)
        ]
    assert answers[:20] == [302] * 20
    assert set(answers[20:]) == {429}
    assert ConsentTicket.objects.count() == 20


def test_it_limits_the_sign_in_callback(settings):
    client = Client(REMOTE_ADDR="203.0.113.7")
    answers = [client.get("/accounts/callback/?code=x&state=y").status_code for _ in range(40)]
    assert answers[:30] == [400] * 30  # no sign-in started in this browser
    assert set(answers[30:]) == {429}
    assert AuditEvent.objects.filter(action="user.sign_in_refused").count() == 30
    assert Client(REMOTE_ADDR="203.0.113.8").get("/accounts/callback/").status_code == 400


def test_the_limits_hold_for_other_workers(settings):
    # Another gunicorn worker is another process with its own memory: what it shares
    # with this one is the database, where the counts are.
    assert caches["default"].__class__.__name__ == "AtomicDatabaseCache"
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(30):
        client.get(junk_callback())
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM mssp_portal_cache")
        assert cursor.fetchone()[0] >= 1
    caches["default"].close()  # as a fresh process would start
    assert client.get(junk_callback()).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_the_shared_count_loses_no_increment_under_concurrency():
    cache = caches["default"]
    cache.add("counter", 0, 60)
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(25):
                cache.incr("counter")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.get("counter") == 200


def _rows() -> dict[str, datetime]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key, expires FROM mssp_portal_cache")
        return dict(cursor.fetchall())


def test_add_stores_only_over_an_absent_or_expired_value_in_one_statement():
    cache = AtomicDatabaseCache("mssp_portal_cache", {})
    cache.add("warm-up", 0, 60)  # the first add of a process is the one that checks for culling

    with CaptureQueriesContext(connection) as queries:
        assert cache.add("rl:203.0.113.7", 0, 60) is True
    assert len(queries) == 1
    assert cache.add("rl:203.0.113.7", 5, 60) is False  # a live count is never reset
    assert cache.get("rl:203.0.113.7") == 0
    assert cache.incr("rl:203.0.113.7") == 1

    with time_machine.travel(datetime(2026, 12, 3, 12, 1, 1, tzinfo=UTC), tick=False):
        assert cache.get("rl:203.0.113.7") is None  # expired
        assert cache.add("rl:203.0.113.7", 0, 60) is True  # the expired row is taken over
        assert cache.get("rl:203.0.113.7") == 0
        assert cache.add("rl:203.0.113.7", 9, 60) is False
    assert cache.add("forever", "kept", None) is True
    assert cache.get("forever") == "kept"


def test_add_culls_expired_rows_past_max_entries():
    filler = AtomicDatabaseCache("mssp_portal_cache", {})  # adds that never cull
    for i in range(8):
        filler.add(f"old-{i}", i, 1)
    filler.add("live", 1, 3600)
    assert len(_rows()) == 9
    with time_machine.travel(datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC), tick=False):
        fresh = AtomicDatabaseCache("mssp_portal_cache", {"OPTIONS": {"MAX_ENTRIES": 5}})
        assert fresh.add("new", 1, 60) is True  # a fresh process's first add checks

    keys = {key.split(":")[-1] for key in _rows()}
    assert keys == {"live", "new"}


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "198.51.100.1, 203.0.113.7", PROXY),  # the header is not read
        (1, "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # what the one proxy appended
        (2, "198.51.100.1, 203.0.113.7, 10.0.0.1", "203.0.113.7"),  # the outer proxy's entry
        (2, "203.0.113.7", PROXY),  # shorter than the proxies: not from them
        (1, "", PROXY),
        (1, "198.51.100.1, not-an-address", PROXY),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_it_takes_the_client_address_the_trusted_proxies_vouch_for(
    settings, rf, hops, forwarded, expected
):
    settings.TRUSTED_PROXY_HOPS = hops
    request = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_it_counts_an_ipv6_client_by_its_64(settings):
    flooder = [Client(REMOTE_ADDR=f"2001:db8:1:2::{i:x}") for i in range(31)]
    answers = [c.get(junk_callback()).status_code for c in flooder]
    assert answers[-1] == 429
    assert Client(REMOTE_ADDR="2001:db8:1:3::1").get(junk_callback()).status_code == 400
