"""Break-glass accounts need a second factor (django-otp): a TOTP authenticator or a
recovery code, enrolled by an administrator with `manage.py break_glass enrol`. Without it
the right password gets nobody in; with it, the sign-in works and is audited as
`staff.break_glass_used`."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import LoginFailure
from audit.models import AuditEvent
from notifications import messages
from notifications.models import Event
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db

BREAK_GLASS = "/accounts/break-glass/"
REFUSED = "The username, password or one-time code is not right"


def current_code(user) -> str:
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def sign_in(client: Client, code: str, password: str = PASSWORD):
    data = {"username": "breakglass", "password": password, "otp_token": code}
    return client.post(BREAK_GLASS, data)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def enrol_from_the_shell(capsys, username: str = "breakglass") -> tuple[str, list[str]]:
    call_command("break_glass", "enrol", username)
    out = capsys.readouterr().out
    url = re.search(r"otpauth://totp/\S+", out).group(0)
    codes = re.findall(r"^  ([0-9a-z]{8})$", out, re.M)
    return url, codes


def test_the_form_asks_for_the_one_time_code(client):
    body = client.get(BREAK_GLASS).content.decode()
    assert "One-time code" in body
    assert 'autocomplete="one-time-code"' in body


def test_it_refuses_the_right_password_without_the_second_factor(superuser):
    client = Client()
    response = client.post(BREAK_GLASS, {"username": "breakglass", "password": PASSWORD})
    assert response.status_code == 400
    assert REFUSED in response.content.decode()
    assert SESSION_KEY not in client.session
    [refusal] = events("user.sign_in_refused")
    assert refusal.detail["reason"] == "bad_second_factor"
    assert LoginFailure.objects.filter(username="breakglass").count() == 1
    assert not events("staff.break_glass_used")


def test_it_refuses_a_wrong_code_exactly_like_a_wrong_password(superuser):
    wrong_code = sign_in(Client(), "000000" if current_code(superuser) != "000000" else "111111")
    wrong_password = sign_in(Client(), current_code(superuser), password="not the password")
    assert wrong_code.status_code == wrong_password.status_code == 400
    for response in (wrong_code, wrong_password):
        assert REFUSED in response.content.decode()
    reasons = [e.detail["reason"] for e in events("user.sign_in_refused")]
    assert reasons == ["bad_second_factor", "bad_credentials"]


def test_it_refuses_an_account_no_second_factor_was_enrolled_for(db):
    get_user_model().objects.create_superuser("breakglass", "", PASSWORD)
    response = sign_in(Client(), "123456")
    assert response.status_code == 400
    body = response.content.decode()
    assert "this account has no second factor enrolled" in body
    assert "manage.py break_glass enrol USERNAME" in body
    assert events("user.sign_in_refused")[0].detail["reason"] == "no_second_factor"


def test_it_signs_in_with_the_authenticator_code_and_audits_the_use(superuser):
    client = Client(REMOTE_ADDR="192.0.2.10")
    response = sign_in(client, current_code(superuser))
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(superuser.pk)
    assert client.session[DEVICE_ID_SESSION_KEY].startswith("otp_totp.totpdevice/")
    [used] = events("staff.break_glass_used")
    assert (used.actor, used.outcome) == ("breakglass", "success")
    assert used.detail == {"second_factor": "totp", "ip": "192.0.2.10"}
    assert events("user.signed_in")[0].detail == {"method": "local"}
    # ... and the on-call channel hears of it, with what to do if nobody planned it.
    (told,) = Event.objects.filter(type="staff.break_glass_used")
    assert told.data["user"] == "breakglass" and told.data["ip"] == "192.0.2.10"
    words = messages.text(told)
    assert words.headline == "Break-glass sign-in: breakglass"
    assert "an authenticator code from 192.0.2.10" in words.summary
    assert "disable the account in the Django admin" in words.remediation


def test_it_refuses_an_authenticator_code_used_once_already(superuser):
    code = current_code(superuser)
    assert sign_in(Client(), code).status_code == 302
    replay = Client()
    assert sign_in(replay, code).status_code == 400
    assert SESSION_KEY not in replay.session


def test_enrolment_from_the_shell_gives_an_authenticator_key_and_recovery_codes(superuser, capsys):
    old_code = current_code(superuser)
    url, codes = enrol_from_the_shell(capsys)
    assert url.startswith("otpauth://totp/Fabrikam%20Security%20portal%3Abreakglass?secret=")
    assert len(codes) == 10 and len(set(codes)) == 10
    # A recovery code works once.
    assert sign_in(Client(), codes[0]).status_code == 302
    used = events("staff.break_glass_used")[-1]
    assert used.detail["second_factor"] == "recovery_code"
    assert used.detail["recovery_codes_left"] == "9"
    assert sign_in(Client(), codes[0]).status_code == 400
    # The earlier authenticator no longer works (unless the new key gives the same code).
    if current_code(superuser) != old_code:
        assert sign_in(Client(), old_code).status_code == 400
    enrolled = events("user.second_factor_enrolled")[-1]
    assert (enrolled.actor, enrolled.detail["user"]) == ("manage.py break_glass", "breakglass")


def test_enrolment_refuses_unknown_accounts_and_entra_users(db, admin_user):
    with pytest.raises(CommandError, match="no account named 'nobody'"):
        call_command("break_glass", "enrol", "nobody")
    with pytest.raises(CommandError, match="signs in with Entra and has no password"):
        call_command("break_glass", "enrol", admin_user.get_username())
    assert not TOTPDevice.objects.exists()
