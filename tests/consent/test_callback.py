"""The consent callback, /consent/callback/: every case of issue 3 and of the security test
plan's sections A and B, each checking what was recorded and what was not."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from consent.models import ConsentTicket, Invitation
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND, TAILSPIN
from tests.consent.helpers import (
    CALLBACK,
    callback_url,
    issue,
    make_invitation,
    nothing_recorded_since,
    recorded,
    success,
)

pytestmark = pytest.mark.django_db

LANDING = re.compile(r"^/consent/landing/[0-9a-f-]{36}/$")


def declined(state: str, error: str = "access_denied", description: str = "") -> str:
    """Entra's redirect after a Cancel or a failure (admin_consent=True comes along)."""
    return callback_url(
        ("admin_consent", "True"),
        ("error", error),
        ("error_description", description),
        ("state", state),
    )


def consent_log(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mssp_portal.consent"]


# --- A1: the happy path ---------------------------------------------------------------


def test_it_records_reported_consent_and_queues_a_verification(
    client, invitation, django_capture_on_commit_callbacks
):
    """A1: consent reported (unverified), state consumed, verification queued."""
    state = issue(invitation)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(success(state))

    assert response.status_code == 303
    assert response["Location"] == f"/consent/landing/{invitation.code}/"

    tenant = Tenant.objects.get()
    assert str(tenant.tenant_id) == NORTHWIND
    assert tenant.status == Tenant.Status.CONSENT_REPORTED  # a hint, not proof
    assert tenant.consent_reported_at is not None
    assert tenant.cloud == "sandbox"
    assert tenant.access_profile == "defender-xdr-readonly"
    assert tenant.display_name == "Northwind Traders"

    ticket = ConsentTicket.objects.get()
    assert ticket.used_at is not None
    assert ticket.result == ConsentTicket.Result.CONSENTED
    assert str(ticket.tenant_id) == NORTHWIND

    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.USED
    assert invitation.tenant == tenant
    assert invitation.used_at is not None

    verification = Verification.objects.get()
    assert verification.tenant == tenant
    assert verification.trigger == Verification.Trigger.CONSENT
    assert verification.state == Verification.State.QUEUED
    assert verification.requested_by == "customer"
    task = DBTaskResult.objects.get()
    assert task.task_path == "tenants.tasks.verify_tenant"
    assert task.args_kwargs["args"] == [str(verification.code)]

    event = AuditEvent.objects.get(action="consent.reported")
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.actor == "customer"
    assert str(event.tenant_id) == NORTHWIND


def test_it_enqueues_the_task_only_after_commit(client, invitation):
    """The worker must never look for a verification that is not committed yet."""
    client.get(success(issue(invitation)))
    assert Verification.objects.count() == 1
    assert DBTaskResult.objects.count() == 0  # the test's transaction never commits


def test_it_lands_on_a_page_that_says_what_happens_next(client, invitation):
    """A1: the generic landing page, reached by Post/Redirect/Get."""
    response = client.get(success(issue(invitation)), follow=True)
    assert response.redirect_chain[-1][1] == 303
    assert response.status_code == 200
    body = response.content.decode()
    assert "your consent is recorded" in body
    assert NORTHWIND in body
    assert "Waiting to start" in body


def test_it_accepts_any_tenant_for_an_invitation_without_an_expected_one(client, db):
    invitation = make_invitation(tenant=None)
    response = client.get(success(issue(invitation), tenant=TAILSPIN))
    assert response.status_code == 303
    assert str(Tenant.objects.get().tenant_id) == TAILSPIN


def test_it_re_onboards_an_offboarded_tenant(client, invitation):
    tenant = Tenant.objects.create(
        tenant_id=NORTHWIND,
        display_name="Northwind (old)",
        cloud="sandbox",
        access_profile="graph-reporting",
        status=Tenant.Status.OFFBOARDED,
        offboarded_at=timezone.now() - timedelta(days=30),
    )
    response = client.get(success(issue(invitation)))
    assert response.status_code == 303
    tenant.refresh_from_db()
    assert Tenant.objects.count() == 1
    assert tenant.status == Tenant.Status.CONSENT_REPORTED
    assert tenant.offboarded_at is None
    assert tenant.access_profile == "defender-xdr-readonly"
    assert tenant.display_name == "Northwind (old)"
    assert tenant.verifications.get().trigger == Verification.Trigger.CONSENT


def test_it_keeps_one_open_verification_when_one_is_already_queued(client, invitation):
    tenant = Tenant.objects.create(
        tenant_id=NORTHWIND, cloud="sandbox", access_profile="defender-xdr-readonly"
    )
    tenant.request_verification(Verification.Trigger.SCHEDULE)
    assert client.get(success(issue(invitation))).status_code == 303
    assert Verification.objects.count() == 1


# --- A2: missing, unknown or malformed state ------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        "",
        "short",
        "x" * 44,
        "A" * 42 + "=",
        "A" * 42 + " ",
        " " + "A" * 42,
        "A" * 42 + "\x00",
        "A" * 42 + "é",
        "../../" + "A" * 37,
    ],
)
def test_it_refuses_a_malformed_state_before_any_query(
    client, invitation, state, django_assert_num_queries
):
    """A2: malformed state → 400 before the database is asked."""
    issue(invitation)
    before = recorded()
    with django_assert_num_queries(0):
        response = client.get(success(state))
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert nothing_recorded_since(before)


def test_it_refuses_a_callback_without_state(client, invitation):
    """A2: no state at all."""
    issue(invitation)
    before = recorded()
    response = client.get(
        callback_url(("admin_consent", "True"), ("tenant", NORTHWIND), ("scope", "x"))
    )
    assert response.status_code == 400
    assert nothing_recorded_since(before)


def test_it_refuses_an_unknown_state_and_records_nothing(client, invitation, caplog):
    """A2: a well-formed state nobody issued → 400, one lookup, a log line, no writes
    but the count of the address's requests (the rate limit, in the cache table)."""
    issue(invitation)
    before = recorded()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(success("A" * 43))
    assert response.status_code == 400
    portal = [
        q["sql"]
        for q in queries
        if "mssp_portal_cache" not in q["sql"] and not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(portal) == 1 and portal[0].startswith("SELECT")
    assert nothing_recorded_since(before)
    [line] = consent_log(caplog)
    assert line.levelno == logging.WARNING
    assert "unknown state" in line.getMessage()
    assert "reference=" in line.getMessage()


def test_it_looks_the_state_up_by_its_hash(client, invitation):
    """The stored hash is not the state: presenting the hash itself gets nowhere."""
    state = issue(invitation)
    ticket = ConsentTicket.objects.get()
    assert ticket.state_hash != state
    assert ticket.state_hash == ConsentTicket.hash(state)
    response = client.get(success(ticket.state_hash[:43]))
    assert response.status_code == 400
    assert ConsentTicket.objects.get().used_at is None


# --- A3: replay ------------------------------------------------------------------------


def test_it_says_already_recorded_when_the_same_callback_comes_twice(client, invitation):
    """A3: refresh/back → "already recorded" with the landing link; no duplicates."""
    url = success(issue(invitation))
    assert client.get(url).status_code == 303
    after_first = recorded()

    response = client.get(url)
    assert response.status_code == 400
    body = response.content.decode()
    assert "already recorded" in body
    assert f'href="/consent/landing/{invitation.code}/"' in body

    assert Tenant.objects.count() == 1
    assert Verification.objects.count() == 1
    assert AuditEvent.objects.filter(action="consent.reported").count() == 1
    replay = AuditEvent.objects.get(action="consent.replayed")
    assert replay.outcome == AuditEvent.Outcome.DENIED
    assert recorded().audit_actions == (*after_first.audit_actions, "consent.replayed")


def test_it_does_not_link_to_a_landing_page_when_the_reused_ticket_recorded_nothing(
    client, invitation
):
    """A3: a replayed Cancel says the link was used, and offers the invitation again."""
    state = issue(invitation)
    assert client.get(declined(state)).status_code == 400
    response = client.get(declined(state))
    body = response.content.decode()
    assert response.status_code == 400
    assert "already used" in body
    assert "/consent/landing/" not in body
    assert f'href="/consent/invite/{invitation.code}/"' in body


def test_it_records_one_tenant_when_two_identical_callbacks_interleave(client, invitation):
    """A3 / ASVS 2.3.4: the second of two concurrent identical callbacks finds the ticket
    taken at its conditional UPDATE, even though it read the ticket as unused.

    The second request is run from inside the first, right after the first has read the
    ticket (connection.execute_wrapper is Django's hook around every query)."""
    url = success(issue(invitation))
    responses = []
    interleaved = False

    def run_the_other_request_after_the_ticket_read(execute, sql, params, many, context):
        nonlocal interleaved
        result = execute(sql, params, many, context)
        if not interleaved and "consent_consentticket" in sql and sql.lstrip().startswith("SELECT"):
            interleaved = True
            responses.append(client.get(url))
        return result

    with connection.execute_wrapper(run_the_other_request_after_the_ticket_read):
        first = client.get(url)

    [second] = responses
    assert second.status_code == 303  # it ran first, and won
    assert first.status_code == 400
    assert "already recorded" in first.content.decode()
    assert Tenant.objects.count() == 1
    assert Verification.objects.count() == 1
    assert AuditEvent.objects.filter(action="consent.reported").count() == 1


def test_it_treats_a_second_ticket_of_a_used_invitation_as_the_same_consent(client, invitation):
    """Two tabs, two clicks, both accepted: one tenant, one open verification."""
    first, second = issue(invitation), issue(invitation)
    assert client.get(success(first)).status_code == 303
    assert client.get(success(second)).status_code == 303
    assert Tenant.objects.count() == 1
    assert Verification.objects.count() == 1


# --- A4: a tenant other than the invitation's ----------------------------------------


def test_it_rejects_consent_from_another_tenant(client, invitation, caplog):
    """A4: S issued for Northwind, callback says Tailspin → rejected, audited, nothing else."""
    state = issue(invitation)
    before = recorded()
    response = client.get(success(state, tenant=TAILSPIN))

    assert response.status_code == 400
    assert "different organisation" in response.content.decode()
    assert TAILSPIN not in response.content.decode()
    assert Tenant.objects.count() == 0
    assert Verification.objects.count() == 0
    ticket = ConsentTicket.objects.get()
    assert ticket.used_at is not None
    assert ticket.result == ConsentTicket.Result.TENANT_MISMATCH
    assert str(ticket.tenant_id) == TAILSPIN
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN
    event = AuditEvent.objects.get()
    assert event.action == "consent.rejected"
    assert event.outcome == AuditEvent.Outcome.DENIED
    assert str(event.tenant_id) == TAILSPIN
    assert event.detail["expected_tenant"] == NORTHWIND
    assert recorded().audit_actions == (*before.audit_actions, "consent.rejected")
    assert any(r.levelno == logging.WARNING for r in consent_log(caplog))


def test_it_binds_an_invitation_without_expected_tenant_to_its_first_consent(client, db):
    """A4: once Northwind consented on an open invitation, Tailspin cannot use it."""
    invitation = make_invitation(tenant=None)
    assert client.get(success(issue(invitation), tenant=NORTHWIND)).status_code == 303
    response = client.get(success(issue(invitation), tenant=TAILSPIN))
    assert response.status_code == 400
    assert list(Tenant.objects.values_list("tenant_id", flat=True)) == [uuid.UUID(NORTHWIND)]
    assert AuditEvent.objects.filter(action="consent.rejected").count() == 1


# --- A6 / B4: errors from Microsoft ----------------------------------------------------


def test_it_explains_a_declined_consent_and_keeps_the_invitation_usable(client, invitation):
    """A6: error=access_denied with admin_consent=True is a refusal, not a success."""
    state = issue(invitation)
    response = client.get(
        declined(state, "access_denied", "AADSTS65004: User declined to consent to access the app.")
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "Microsoft did not grant consent" in body
    # A user who is not an administrator is told whom to forward which link to.
    assert "Need admin approval" in body
    assert "Global Administrator or Privileged Role Administrator" in body
    assert f"http://testserver/consent/invite/{invitation.code}/" in body
    assert "AADSTS65004" not in body
    assert f'href="/consent/invite/{invitation.code}/"' in body

    assert Tenant.objects.count() == 0
    assert Verification.objects.count() == 0
    ticket = ConsentTicket.objects.get()
    assert ticket.used_at is not None
    assert ticket.result == ConsentTicket.Result.DECLINED
    invitation.refresh_from_db()
    assert invitation.is_usable
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("consent.declined", AuditEvent.Outcome.FAILURE)
    assert event.detail["error"] == "access_denied"
    assert str(event.correlation_id) in body


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("access_denied", "Microsoft did not grant consent"),
        ("consent_required", "Global Administrator"),
        ("temporarily_unavailable", "temporary problem"),
        ("invalid_request", "could not process the request"),
        ("unauthorized_client", "blocked or disabled"),
        ("a_brand_new_error", "a reason we do not recognise"),
    ],
)
def test_it_explains_microsoft_errors_by_their_error_value(client, invitation, error, says):
    """B4: the allowlisted `error` picks the explanation; anything else is generic."""
    response = client.get(declined(issue(invitation), error, "whatever"))
    assert response.status_code == 400
    assert says in response.content.decode()
    expected = error if error != "a_brand_new_error" else "unrecognised"
    assert AuditEvent.objects.get().detail["error"] == expected


def test_it_never_lets_the_description_drive_the_outcome(client, invitation):
    """B4: a description that names other errors changes nothing: only `error` counts."""
    response = client.get(
        declined(
            issue(invitation),
            "temporarily_unavailable",
            "AADSTS700016 access_denied consent_required admin_consent=True tenant=" + NORTHWIND,
        )
    )
    body = response.content.decode()
    assert "temporary problem" in body
    assert "Microsoft did not grant consent" not in body
    assert "AADSTS700016" not in body
    assert Tenant.objects.count() == 0


def test_it_reads_a_consent_with_an_error_as_a_failure_even_with_a_tenant(client, invitation):
    """A6: `error` wins over admin_consent=True and a tenant."""
    response = client.get(
        callback_url(
            ("admin_consent", "True"),
            ("tenant", NORTHWIND),
            ("error", "access_denied"),
            ("state", issue(invitation)),
        )
    )
    assert response.status_code == 400
    assert Tenant.objects.count() == 0


def test_it_refuses_a_callback_without_admin_consent_true(client, invitation):
    """No `error` and no admin_consent=True: not a success Entra would send."""
    state = issue(invitation)
    before = recorded()
    response = client.get(callback_url(("tenant", NORTHWIND), ("state", state)))
    assert response.status_code == 400
    response = client.get(
        callback_url(("admin_consent", "False"), ("tenant", NORTHWIND), ("state", state))
    )
    assert response.status_code == 400
    assert nothing_recorded_since(before)


# --- A7: duplicated parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        [("state", "S1"), ("state", "S2")],
        [("state", "S1"), ("state", "S1")],
        [("tenant", NORTHWIND), ("tenant", TAILSPIN)],
        [("admin_consent", "True"), ("admin_consent", "True")],
        [("error", "access_denied"), ("error", "access_denied")],
    ],
)
def test_it_refuses_duplicated_parameters(client, invitation, pairs, django_assert_num_queries):
    """A7: QueryDict.get would silently take the last value; the callback refuses instead."""
    state = issue(invitation)
    other = issue(invitation)
    values = {"S1": state, "S2": other}
    params = {"admin_consent": "True", "tenant": NORTHWIND, "state": state}
    duplicated = {key for key, _ in pairs}
    base = [(k, v) for k, v in params.items() if k not in duplicated]
    before = recorded()
    with django_assert_num_queries(0):
        response = client.get(callback_url(*base, *[(k, values.get(v, v)) for k, v in pairs]))
    assert response.status_code == 400
    assert nothing_recorded_since(before)


# --- A8: tenant values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant",
    [
        "common",
        "organizations",
        "consumers",
        "contoso.com",
        "northwind.example",
        "' OR 1=1--",
        "\x00",
        NORTHWIND + "\x00",
        "A" * 10_000,
        "{" + NORTHWIND + "}",
        NORTHWIND.replace("-", ""),
        "urn:uuid:" + NORTHWIND,
        " " + NORTHWIND,
        "",
    ],
)
def test_it_refuses_a_tenant_that_is_not_a_guid_before_any_query(
    client, invitation, tenant, django_assert_num_queries
):
    """A8: only a GUID is a tenant; everything else is refused before the database."""
    state = issue(invitation)
    before = recorded()
    with django_assert_num_queries(0):
        response = client.get(success(state, tenant=tenant))
    assert response.status_code == 400
    assert nothing_recorded_since(before)
    if tenant.strip():
        assert tenant.strip().encode() not in response.content


def test_it_accepts_an_upper_case_guid(client, invitation):
    response = client.get(success(issue(invitation), tenant=NORTHWIND.upper()))
    assert response.status_code == 303
    assert str(Tenant.objects.get().tenant_id) == NORTHWIND


def test_it_refuses_an_oversized_query_string_unread(client, invitation, django_assert_num_queries):
    """A8: anything longer than Entra would ever send is refused before it is parsed."""
    state = issue(invitation)
    before = recorded()
    with django_assert_num_queries(0):
        response = client.get(success(state) + "&scope=" + "x" * 9000)
    assert response.status_code == 400
    assert nothing_recorded_since(before)


# --- A9: expiry ------------------------------------------------------------------------


def test_it_refuses_a_state_one_minute_past_its_lifetime(client, invitation):
    """A9: → 400 "link expired", ticket marked expired, audited; the invitation stays."""
    state = issue(invitation)
    ttl = timedelta(seconds=settings.CONSENT_STATE_TTL)
    with time_machine.travel(timezone.now() + ttl + timedelta(minutes=1)):
        response = client.get(success(state))

    body = response.content.decode()
    assert response.status_code == 400
    assert "expired" in body
    assert f'href="/consent/invite/{invitation.code}/"' in body  # start again
    assert Tenant.objects.count() == 0
    assert Verification.objects.count() == 0
    ticket = ConsentTicket.objects.get()
    assert ticket.used_at is not None
    assert ticket.result == ConsentTicket.Result.EXPIRED
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("consent.expired", AuditEvent.Outcome.DENIED)
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN


def test_it_accepts_a_state_one_minute_before_its_lifetime_ends(client, invitation):
    state = issue(invitation)
    ttl = timedelta(seconds=settings.CONSENT_STATE_TTL)
    with time_machine.travel(timezone.now() + ttl - timedelta(minutes=1)):
        assert client.get(success(state)).status_code == 303


def test_it_expires_a_state_with_its_invitation(client, db):
    """A ticket never outlives its invitation."""
    invitation = make_invitation(days=0)
    invitation.expires_at = timezone.now() + timedelta(minutes=5)
    invitation.save(update_fields=["expires_at"])
    state = issue(invitation)
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        response = client.get(success(state))
    assert response.status_code == 400
    assert "no longer valid" in response.content.decode()
    assert Tenant.objects.count() == 0


def test_it_refuses_consent_on_an_invitation_revoked_meanwhile(client, invitation):
    state = issue(invitation)
    assert invitation.revoke(actor="admin@fabrikam-mssp.example")
    response = client.get(success(state))
    assert response.status_code == 400
    assert "withdrawn" in response.content.decode()
    assert Tenant.objects.count() == 0
    assert ConsentTicket.objects.get().result == ConsentTicket.Result.WITHDRAWN
    assert AuditEvent.objects.exclude(action="invitation.revoked").get().action == (
        "consent.withdrawn"
    )


# --- A10: the sign-in callback's parameters -------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ("code", "0.AAAA-authorization-code"),
        ("session_state", "abc"),
        ("next", "https://evil.example"),
        ("client_info", "eyJ1aWQiOiIx"),
        ("id_token", "eyJ0eXAiOiJKV1Qi"),
    ],
)
def test_it_refuses_parameters_entra_does_not_send_here(
    client, invitation, extra, django_assert_num_queries
):
    """A10: a sign-in response (code, session_state, …) sent to the consent callback, or
    anything unknown, is refused."""
    state = issue(invitation)
    before = recorded()
    with django_assert_num_queries(0):
        response = client.get(success(state) + f"&{extra[0]}={extra[1]}")
    assert response.status_code == 400
    assert nothing_recorded_since(before)


def test_it_refuses_a_sign_in_response(client, invitation):
    """A10: code + state is what the staff sign-in callback gets; not accepted here."""
    response = client.get(callback_url(("code", "abc"), ("state", issue(invitation))))
    assert response.status_code == 400
    assert Tenant.objects.count() == 0
    assert ConsentTicket.objects.get().used_at is None


# --- methods and headers --------------------------------------------------------------


def test_it_accepts_only_get(client, invitation):
    state = issue(invitation)
    response = client.post(CALLBACK, {"admin_consent": "True", "tenant": NORTHWIND, "state": state})
    assert response.status_code == 405
    assert Tenant.objects.count() == 0


@pytest.mark.parametrize("kind", ["success", "invalid", "declined", "mismatch", "replayed"])
def test_every_callback_response_is_private_and_sends_no_referrer(client, invitation, kind):
    """A12: Referrer-Policy: no-referrer and no-store on every outcome."""
    state = issue(invitation)
    url = {
        "success": success(state),
        "invalid": success("bad"),
        "declined": declined(state),
        "mismatch": success(state, tenant=TAILSPIN),
        "replayed": success(state),
    }[kind]
    if kind == "replayed":
        client.get(url)
    response = client.get(url)
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


# --- B1, B3: hostile error_description -------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "admin\u202egnp.exe\u200b\u200d",
    "\x1b[31mred\x1b[0m",
    "ok\r\n2026-01-01 00:00:00 INFO mssp_portal.audit audit action=consent.reported ok",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_it_never_reflects_the_error_description(client, invitation, payload, caplog):
    """B1: not reflected (raw or escaped); a generic message and a reference instead."""
    caplog.set_level(logging.INFO)
    response = client.get(declined(issue(invitation), "access_denied", payload))
    body = response.content.decode()
    assert response.status_code == 400
    assert "<script>alert" not in body
    assert "onerror" not in body
    assert "\u202e" not in body
    assert "red" not in body
    assert "consent.reported" not in body
    assert str(AuditEvent.objects.get().correlation_id) in body


@pytest.mark.parametrize("payload", HOSTILE)
def test_it_logs_the_error_description_as_one_escaped_line(client, invitation, payload, caplog):
    """B3: one entry, CR/LF and control/bidi characters escaped."""
    caplog.set_level(logging.INFO)
    client.get(declined(issue(invitation), "access_denied", payload))
    [line] = [r for r in consent_log(caplog) if "description=" in r.getMessage()]
    message = line.getMessage()
    assert "\r" not in message
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\u202e" not in message
    assert "\u200b" not in message
    for record in caplog.records:
        assert "\n" not in record.getMessage()
        assert "\r" not in record.getMessage()
    if "\r\n" in payload:
        assert "\\r\\n2026-01-01" in message


def test_it_cuts_a_long_error_description_to_one_kilobyte_in_the_log(client, invitation, caplog):
    """B3: bounded log entries."""
    caplog.set_level(logging.INFO)
    client.get(declined(issue(invitation), "access_denied", "A" * 7000))
    [line] = [r for r in consent_log(caplog) if "description=" in r.getMessage()]
    description = line.getMessage().split("description=", 1)[1].split(" reference=")[0]
    assert len(description) <= 1024
    assert description.endswith("…")


def test_it_refuses_a_100_kb_error_description_in_one_line_without_it(client, invitation, caplog):
    """B3: 100 KB → refused unread: one log line, without the payload; nothing recorded."""
    caplog.set_level(logging.INFO)
    state = issue(invitation)
    before = recorded()
    payload = ("<script>alert(1)</script>\r\n" * 4000)[:100_000]
    response = client.get(declined(state, "access_denied", payload))
    assert response.status_code == 400
    assert b"<script>" not in response.content
    assert nothing_recorded_since(before)
    [line] = consent_log(caplog)
    assert "query string of" in line.getMessage()
    assert "<script>" not in line.getMessage()
    assert len(line.getMessage()) < 200


def test_it_never_reflects_an_unknown_error_value(client, invitation):
    """B1: the `error` value itself is attacker-shaped too."""
    response = client.get(declined(issue(invitation), "<b>x</b>", ""))
    assert response.status_code == 400
    assert b"<b>x</b>" not in response.content
    assert b"&lt;b&gt;" not in response.content
    assert AuditEvent.objects.get().detail["error"] == "unrecognised"


def test_it_does_not_render_an_invalid_callbacks_values(client, invitation):
    response = client.get(success("<script>alert(1)</script>" + "A" * 18, tenant="<i>t</i>"))
    assert response.status_code == 400
    assert b"<script>" not in response.content
    assert b"<i>t</i>" not in response.content


# --- E10: the database fails mid-way --------------------------------------------------


def test_it_asks_to_retry_and_keeps_the_ticket_when_the_database_fails(client, invitation):
    """E10: the insert of the tenant fails → 503 "your consent is safe", nothing recorded
    (ticket unconsumed: it is all one transaction); the same callback then succeeds."""
    url = success(issue(invitation))
    before = recorded()

    def fail_the_tenant_insert(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and "tenants_tenant" in sql:
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_the_tenant_insert):
        response = client.get(url)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "Your consent at Microsoft is safe" in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert nothing_recorded_since(before)
    assert ConsentTicket.objects.get().used_at is None
    assert Invitation.objects.get().status == Invitation.Status.OPEN

    assert client.get(url).status_code == 303
    assert Tenant.objects.count() == 1


def test_it_asks_to_retry_when_the_database_is_unreachable(client, invitation):
    """E10: the very first query fails (PostgreSQL down) → 503, no traceback."""
    url = success(issue(invitation))

    def database_down(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(database_down):
        response = client.get(url)
    assert response.status_code == 503
    assert ConsentTicket.objects.get().used_at is None


@pytest.mark.django_db(transaction=True)
def test_it_records_one_tenant_when_identical_callbacks_race_on_threads():
    """A3 / ASVS 2.3.4, with real concurrency: five threads, five connections, one ticket."""
    invitation = make_invitation()
    url = success(issue(invitation))
    barrier = threading.Barrier(5)
    statuses: list[int] = []

    def deliver() -> None:
        # The suite's in-memory SQLite (shared cache) reports "table is locked" at once
        # instead of waiting, which the callback answers with "please retry" (503, nothing
        # recorded); the customer's browser retries, as the page asks. PostgreSQL waits on
        # the winner's row lock instead.
        try:
            barrier.wait()
            client = Client()
            for _attempt in range(50):
                status = client.get(url).status_code
                if status != 503:
                    break
            statuses.append(status)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [303, 400, 400, 400, 400]
    assert Tenant.objects.count() == 1
    assert Verification.objects.count() == 1
    assert DBTaskResult.objects.count() == 1
    assert AuditEvent.objects.filter(action="consent.reported").count() == 1
    assert AuditEvent.objects.filter(action="consent.replayed").count() == 4


# --- AADSTS650052: the customer's organisation lacks a service the app asks for -----------

MDE_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"


def _missing_service(resource_app_id: str, tail: str = "") -> str:
    return (
        f"AADSTS650052: The app is trying to access a service '{resource_app_id}'"
        f"(WindowsDefenderATP) that your organization '{NORTHWIND}' lacks a service principal "
        f"for. Contact your IT Admin.{tail}\r\nTrace ID: 1\r\nCorrelation ID: 2"
    )


def test_a_consent_refused_for_a_missing_service_names_the_service(client, invitation):
    response = client.get(
        declined(issue(invitation), "invalid_client", _missing_service(MDE_APP_ID))
    )
    body = response.content.decode()

    assert response.status_code == 400
    assert "a service is missing in your organisation" in body
    assert "<strong>Microsoft Defender for Endpoint</strong>" in body
    assert "Microsoft Defender for Endpoint licence" in body
    assert "open your invitation again and grant consent" in body
    assert "blocked or disabled" not in body
    for raw in ("AADSTS650052", MDE_APP_ID, "lacks a service principal"):
        assert raw not in body
    assert Tenant.objects.count() == 0
    event = AuditEvent.objects.get()
    assert event.detail["code"] == "AADSTS650052"
    assert event.detail["missing_services"] == "mde"
    # Filed under the tenant the invitation expects, so the tenant's trail shows it.
    assert event.tenant_id == uuid.UUID(NORTHWIND)
    invitation.refresh_from_db()
    assert invitation.is_usable


def test_a_missing_service_description_names_only_known_services(client, invitation):
    # An unknown id, or markup, in the sender's text is never shown: only our own words.
    forged = _missing_service("11111111-2222-3333-4444-555555555555", "<script>x</script>")
    body = client.get(declined(issue(invitation), "invalid_client", forged)).content.decode()
    assert "asks for access to a Microsoft service, which your organisation does not have" in body
    assert "<script>x" not in body
    assert "11111111-2222" not in body
    assert AuditEvent.objects.get().detail["missing_services"] == ""


def test_the_code_counts_only_at_the_start_of_the_description(client, invitation):
    mentioned = "Something else. " + _missing_service(MDE_APP_ID)
    body = client.get(declined(issue(invitation), "invalid_client", mentioned)).content.decode()
    assert "a service is missing" not in body
    assert "blocked or disabled" in body
    assert "code" not in AuditEvent.objects.get().detail


def test_onboarding_revokes_the_tenants_other_open_invitations(client, invitation):
    # An older link for the same tenant, from before the one-open-invitation rule.
    other = make_invitation(customer="Northwind (old link)")

    assert client.get(success(issue(invitation))).status_code == 303

    other.refresh_from_db()
    assert other.status == Invitation.Status.REVOKED
    event = AuditEvent.objects.get(action="invitation.revoked")
    assert event.actor == "system"
    assert event.detail == {
        "invitation": str(other.code),
        "reason": f"tenant onboarded through invitation {invitation.code}",
    }
    assert client.get(f"/consent/invite/{other.code}/").status_code == 410
