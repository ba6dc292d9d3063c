"""The token canary on staff sign-in: every token Entra issued during Entra sign-ins (the
id token and access token msal receives, the assertions), the PKCE verifier, and the
break-glass password and one-time codes are looked for in the logs captured at DEBUG from
every logger, in every table, on every page the sign-ins showed, and in the error reports
(the ADMINS mail) of a sign-in that fails after the tokens arrived."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.signals import user_logged_in
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.views import FLOW_KEY
from tests.personas import ADMIN, OPERATOR, PASSWORD, VISITOR, break_glass_form, sandbox_redirect

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
BREAK_GLASS = "/accounts/break-glass/"


def _dump_database() -> str:
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(rows)


class SignInBroke(Exception):
    """What a failure after the tokens arrived (a database down at login()) looks like."""


def _break_login(sender, **kwargs):
    raise SignInBroke("the session store is down")


def _entra_sign_in(client: Client, upn: str, pages: list[str], verifiers: list[str]) -> None:
    callback = sandbox_redirect(client, upn)
    verifiers.append(client.session[FLOW_KEY]["code_verifier"])
    response = client.get(callback, follow=True)
    pages.append(response.content.decode())


@pytest.mark.django_db
def test_no_token_password_or_verifier_in_logs_database_pages_or_error_reports(
    entra, superuser, settings, caplog
):
    settings.ADMINS = [("Portal admins", "admins@fabrikam-mssp.example")]
    caplog.set_level(logging.DEBUG)
    for name in ("msal", "urllib3", "azure", "django", "accounts", "mssp_portal"):
        caplog.set_level(logging.DEBUG, logger=name)
    before = set(entra.control.issued_tokens())
    pages: list[str] = []
    verifiers: list[str] = []

    # Entra sign-ins: an admin, an operator, a refused visitor; sign-out.
    for upn in (ADMIN, OPERATOR, VISITOR):
        client = Client()
        _entra_sign_in(client, upn, pages, verifiers)
    pages.append(client.post(reverse("accounts:logout"), follow=True).content.decode())
    # Break-glass: a wrong password, then the right one.
    local = Client()
    wrong = PASSWORD[::-1]
    forms = [break_glass_form(superuser, password=wrong), break_glass_form(superuser)]
    pages.append(local.post(BREAK_GLASS, forms[0]).content.decode())
    pages.append(local.post(BREAK_GLASS, forms[1], follow=True).content.decode())
    # Sign-ins that fail once the tokens arrived: the error reports go to the ADMINS.
    user_logged_in.connect(_break_login)
    try:
        broken = Client(raise_request_exception=False)
        _entra_sign_in(broken, ADMIN, pages, verifiers)
        broken = Client(raise_request_exception=False)
        forms.append(break_glass_form(superuser))
        pages.append(broken.post(BREAK_GLASS, forms[-1]).content.decode())
    finally:
        user_logged_in.disconnect(_break_login)

    reports = [m.body for m in mail.outbox] + [
        alt for m in mail.outbox for alt, _type in m.alternatives
    ]
    assert len(mail.outbox) == 2 and all("SignInBroke" in r for r in reports)
    issued = [t for t in entra.control.issued_tokens() if t not in before]
    assert len(issued) >= 8  # an id token and an access token per redeemed code, assertions
    surfaces = {
        "logs": caplog.text,
        "database": _dump_database(),
        "pages": "\n".join(pages),
        "error reports": "\n".join(reports),
    }
    secrets = [PASSWORD, wrong, *verifiers]
    for token in issued:
        secrets += token.split(".")[1:]
    # Recovery codes are kept (django-otp stores them) until used: the database is not a
    # surface for them.
    codes = [form["otp_token"] for form in forms]
    for surface, text in surfaces.items():
        assert text, surface
        if surface != "database":
            assert not any(code in text for code in codes), f"a one-time code is in the {surface}"
        for secret in secrets:
            assert secret not in text, f"a token, verifier or password is in the {surface}"
        assert not JWT.search(text), f"something shaped like a JWT is in the {surface}"
