"""Sessions (plan C6) and the break-glass password sign-in (plan C7): key rotation, sign-out,
idle and absolute time-outs, roles removed in Entra, throttling, and the Django admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.middleware import BACKGROUND_HEADER
from accounts.models import LoginFailure
from audit.models import AuditEvent
from entra_sandbox.testing import set_user_access
from tests.personas import break_glass_form, sandbox_redirect, signed_in_client

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

DASHBOARD = "/"
BREAK_GLASS = "/accounts/break-glass/"


def is_signed_in(client: Client) -> bool:
    return client.get(DASHBOARD).status_code == 200


def sends_to_sign_in(response: object) -> bool:
    return response.status_code == 302 and response["Location"].startswith(
        reverse(settings.LOGIN_URL)
    )


def audited(action: str, outcome: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(action=action).order_by("at", "pk")
    return list(events.filter(outcome=outcome) if outcome else events)


# --- Sign-in and sign-out ------------------------------------------------------------------


def test_it_rotates_the_session_key_on_a_break_glass_sign_in(superuser):
    client = Client()
    session = client.session  # a session from before the sign-in (say, a planted one)
    session["marker"] = "before"
    session.save()
    before = session.session_key
    response = client.post(BREAK_GLASS, break_glass_form(superuser))
    assert response.status_code == 302
    assert client.session.session_key != before
    assert client.session[SESSION_KEY] == str(superuser.pk)
    assert not Session.objects.filter(session_key=before).exists()
    event = audited("user.signed_in", "success")[0]
    assert (event.actor, event.detail) == ("breakglass", {"method": "local"})


def test_it_deletes_the_server_session_on_sign_out(operator_client):
    key = operator_client.session.session_key
    assert Session.objects.filter(session_key=key).exists()
    response = operator_client.post(reverse("accounts:logout"))
    assert sends_to_sign_in(response)
    assert not Session.objects.filter(session_key=key).exists()
    assert not is_signed_in(operator_client)
    assert [e.actor for e in audited("user.signed_out")] == ["operator@fabrikam-mssp.example"]


def test_it_ends_the_session_even_if_the_old_cookie_is_replayed(operator_client):
    cookie = operator_client.cookies[settings.SESSION_COOKIE_NAME].value
    operator_client.post(reverse("accounts:logout"))
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert sends_to_sign_in(replay.get(DASHBOARD))


def test_it_does_not_sign_out_on_get(operator_client):
    # A GET sign-out would let any page (an <img src>) sign staff out.
    assert operator_client.get(reverse("accounts:logout")).status_code == 405
    assert is_signed_in(operator_client)


# --- Time-outs -------------------------------------------------------------------------------


@pytest.fixture
def no_role_recheck(settings):
    """The time-out tests travel hours; the role re-check (Graph, every STAFF_ROLE_RECHECK
    seconds) has its own tests in test_role_recheck.py and is put out of their way."""
    settings.STAFF_ROLE_RECHECK = 10 * settings.SESSION_COOKIE_AGE


def test_it_ends_an_idle_session(operator_client, no_role_recheck):
    key = operator_client.session.session_key
    with time_machine.travel(
        timezone.now() + timedelta(seconds=settings.SESSION_IDLE_TIMEOUT - 60)
    ):
        assert is_signed_in(operator_client)  # activity: the idle clock starts again
    idle_since = timezone.now() + timedelta(seconds=settings.SESSION_IDLE_TIMEOUT - 60)
    with time_machine.travel(idle_since + timedelta(seconds=settings.SESSION_IDLE_TIMEOUT + 1)):
        assert sends_to_sign_in(operator_client.get(DASHBOARD))
    assert not Session.objects.filter(session_key=key).exists()
    event = audited("session.expired")[0]
    assert (event.actor, event.detail["kind"]) == ("operator@fabrikam-mssp.example", "idle")


def test_it_keeps_an_active_session_past_the_idle_timeout(operator_client, no_role_recheck):
    start = timezone.now()
    step = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT // 2)
    for n in range(1, 6):
        with time_machine.travel(start + n * step):
            assert is_signed_in(operator_client), n


def test_it_does_not_count_the_dashboards_own_refreshes_as_activity(
    operator_client, no_role_recheck
):
    start = timezone.now()
    step = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT // 3)
    live = reverse("console:dashboard_live")
    for n in (1, 2):
        with time_machine.travel(start + n * step):
            assert operator_client.get(live, **{BACKGROUND_HEADER: "1"}).status_code == 200
    with time_machine.travel(start + 3 * step + timedelta(seconds=1)):
        assert sends_to_sign_in(operator_client.get(live, **{BACKGROUND_HEADER: "1"}))


def test_it_ends_a_session_at_the_absolute_timeout_however_active(admin_client, no_role_recheck):
    start = timezone.now()
    step = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT // 2)
    steps = settings.SESSION_COOKIE_AGE // step.seconds
    for n in range(1, steps):
        with time_machine.travel(start + n * step):
            assert is_signed_in(admin_client), n
    with time_machine.travel(start + timedelta(seconds=settings.SESSION_COOKIE_AGE + 1)):
        assert sends_to_sign_in(admin_client.get(DASHBOARD))
    assert audited("session.expired")[0].detail["kind"] == "absolute"


def test_it_ends_a_session_without_the_sign_in_stamps(operator_user):
    # A session not made by our sign-in (no stamps): never trusted as a fresh one.
    client = Client()
    client.force_login(operator_user, backend="accounts.backends.ThrottledModelBackend")
    assert sends_to_sign_in(client.get(DASHBOARD))
    assert audited("session.expired")[0].detail["kind"] == "unstamped"


def test_it_marks_signed_in_pages_no_store(operator_client):
    response = operator_client.get(DASHBOARD)
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


# --- Roles removed in Entra ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_applies_a_role_removed_in_entra_at_the_next_sign_in(entra, sandbox_server):
    upn = "operator@fabrikam-mssp.example"
    laptop = Client()
    laptop.get(sandbox_redirect(laptop, upn))
    assert is_signed_in(laptop)

    set_user_access(entra, upn, app_roles=[])  # the control API: PATCH /_sandbox/users/…
    phone = Client()
    response = phone.get(sandbox_redirect(phone, upn))
    assert response.status_code == 403
    assert not is_signed_in(phone)
    # The refused sign-in took the portal groups away: the session still open on the
    # laptop is refused at its next request, not at its time-out.
    assert laptop.get(DASHBOARD).status_code == 403
    assert audited("user.sign_in_refused", "denied")[0].detail["reason"] == "no_role"


# --- Break-glass throttling (plan C7) ---------------------------------------------------------


def fail(client: Client, username: str, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        response = client.post(
            BREAK_GLASS, {"username": username, "password": "wrong"}, REMOTE_ADDR=address
        )
        assert response.status_code in (400, 429)


def test_it_locks_a_username_after_repeated_failures(superuser):
    client = Client()
    fail(client, "breakglass", settings.LOGIN_FAILURE_LIMIT)
    # The right password now: refused without being checked.
    response = client.post(BREAK_GLASS, break_glass_form(superuser))
    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert "correct username and password" not in response.content.decode()
    assert SESSION_KEY not in client.session
    reasons = [e.detail["reason"] for e in audited("user.sign_in_refused", "denied")]
    assert reasons == ["bad_credentials"] * (settings.LOGIN_FAILURE_LIMIT - 1) + ["throttled"] * 2
    assert LoginFailure.objects.count() == settings.LOGIN_FAILURE_LIMIT + 1


def test_it_locks_the_username_from_every_address(superuser):
    fail(Client(), "BreakGlass ", settings.LOGIN_FAILURE_LIMIT, address="192.0.2.1")
    response = Client().post(
        BREAK_GLASS,
        break_glass_form(superuser),
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 429


def test_it_does_not_check_the_password_while_locked(superuser, monkeypatch):
    fail(Client(), "breakglass", settings.LOGIN_FAILURE_LIMIT)
    from django.contrib.auth.hashers import MD5PasswordHasher

    checked = []
    original = MD5PasswordHasher.verify
    monkeypatch.setattr(
        MD5PasswordHasher,
        "verify",
        lambda self, password, encoded: checked.append(1) or original(self, password, encoded),
    )
    Client().post(BREAK_GLASS, break_glass_form(superuser))
    assert checked == []


def test_it_locks_an_address_guessing_across_usernames(superuser):
    client = Client()
    for n in range(settings.LOGIN_FAILURE_IP_LIMIT):
        fail(client, f"guess{n}", 1, address="203.0.113.9")
    locked = client.post(BREAK_GLASS, break_glass_form(superuser), REMOTE_ADDR="203.0.113.9")
    assert locked.status_code == 429
    assert SESSION_KEY not in client.session
    # The username itself is not locked: from elsewhere, its owner still gets in.
    elsewhere = Client()
    response = elsewhere.post(BREAK_GLASS, break_glass_form(superuser), REMOTE_ADDR="192.0.2.50")
    assert response.status_code == 302
    assert elsewhere.session[SESSION_KEY] == str(superuser.pk)


def test_it_unlocks_after_the_window(superuser):
    fail(Client(), "breakglass", settings.LOGIN_FAILURE_LIMIT)
    later = timezone.now() + timedelta(seconds=settings.LOGIN_FAILURE_WINDOW + 1)
    with time_machine.travel(later):
        client = Client()
        response = client.post(BREAK_GLASS, break_glass_form(superuser))
        assert response.status_code == 302
    assert not LoginFailure.objects.filter(username="breakglass").exists()


def test_it_forgets_failures_after_a_successful_sign_in(superuser):
    fail(Client(), "breakglass", settings.LOGIN_FAILURE_LIMIT - 1)
    client = Client()
    assert client.post(BREAK_GLASS, break_glass_form(superuser)).status_code == 302
    fail(Client(), "breakglass", settings.LOGIN_FAILURE_LIMIT - 1)
    assert Client().post(BREAK_GLASS, break_glass_form(superuser)).status_code == 302


def test_it_gives_entra_users_no_password_to_guess(admin_user):
    response = Client().post(BREAK_GLASS, {"username": admin_user.get_username(), "password": ""})
    assert response.status_code == 400
    for guess in ("", "password", admin_user.get_username()):
        assert not admin_user.check_password(guess)


def test_it_does_not_redirect_off_site_after_sign_in(superuser):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        client = Client()
        response = client.post(BREAK_GLASS, break_glass_form(superuser, next=target))
        assert response.status_code == 302
        assert response["Location"] == reverse("console:dashboard"), target


# --- The Django admin --------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["operator_client", "admin_client", "outsider_client"])
def test_it_keeps_the_django_admin_from_portal_staff(persona, request):
    client = request.getfixturevalue(persona)
    for path in ("/admin/", "/admin/auth/user/", "/admin/accounts/apitoken/"):
        assert client.get(path).status_code == 403, path
    events = audited("admin_site.refused", "denied")
    assert len(events) == 3
    assert events[0].detail["path"] == "/admin/"


def test_it_sends_anonymous_visitors_of_the_admin_to_the_sign_in(db, client):
    assert sends_to_sign_in(client.get("/admin/"))


def test_it_opens_the_admin_to_a_break_glass_superuser(superuser):
    client = Client()
    client.post(BREAK_GLASS, break_glass_form(superuser))
    assert client.get("/admin/").status_code == 200


def test_it_keeps_roles_as_the_only_source_of_permissions(operator_user):
    # A portal group edited by hand is reset at the next role mapping.
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.get(name="Portal operators")
    group.permissions.add(Permission.objects.get(codename="administer"))
    roles.apply(operator_user, [roles.OPERATOR_ROLE])
    client = signed_in_client(operator_user)
    assert client.get(reverse("console:invitations")).status_code == 403
