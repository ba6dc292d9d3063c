"""Error reports never carry a token: an exception raised while a token or an assertion is
in a variable (ours or a library's) reaches the ADMINS mail, Django's report and the 500
page without it."""

from __future__ import annotations

import logging
import sys

import pytest
import requests
import urllib3
from django.core import mail
from django.test import RequestFactory
from django.utils.log import AdminEmailHandler
from django.views.debug import get_exception_reporter_class

from mssp_portal import clouds, identity
from mssp_portal.errors import server_error
from tenants.verification import probes
from tenants.verification.exchange import Exchange
from tests.conftest import NORTHWIND, PORTAL_APP
from tests.personas import make_tenant

pytestmark = pytest.mark.django_db


class BrokenAdapter(requests.adapters.HTTPAdapter):
    """A transport that fails in a way nobody catches, once the request is built."""

    def send(self, request, **kwargs):
        raise RuntimeError("the connection pool is broken")


def _reports(exc_info) -> dict[str, str]:
    """The text and HTML report Django builds, the ADMINS mail, and the 500 page."""
    request = RequestFactory().get("/tenants/")
    reporter = get_exception_reporter_class(request)(request, *exc_info)
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/",), exc_info
    )
    record.request = request
    record.status_code = 500
    mail.outbox.clear()
    AdminEmailHandler(include_html=True).emit(record)
    (message,) = mail.outbox
    return {
        "text report": reporter.get_traceback_text(),
        "html report": reporter.get_traceback_html(),
        "mail": message.body,
        "mail html": message.alternatives[0][0],
        "500 page": server_error(request).content.decode(),
    }


def _assert_no_token(reports: dict[str, str], token: str, frame: str) -> None:
    _header, payload, signature = token.split(".")
    assert frame in reports["text report"]  # the frames were rendered
    for where, text in reports.items():
        for part in (token, payload, signature):
            assert part not in text, f"a token part is in the {where}"


@pytest.fixture
def reporting(settings):
    settings.DEBUG = False
    settings.ADMINS = [("Portal admins", "admins@fabrikam-mssp.example")]


def test_a_probe_that_raises_reports_without_its_bearer_token(sandbox, reporting):
    token = identity.assertion()  # a real token of the sandbox
    session = requests.Session()
    session.mount("https://", BrokenAdapter())
    tenant = make_tenant(NORTHWIND)
    try:
        probes.probe("graph", token, tenant, clouds.current(), session)
    except RuntimeError:
        exc_info = sys.exc_info()

    _assert_no_token(_reports(exc_info), token, "in probe")


def test_a_token_request_that_raises_reports_without_the_assertion(sandbox, reporting, monkeypatch):
    assertion = identity.assertion()

    def urlopen(pool, method, url, body=None, **kwargs):
        # Fails the token request at the bottom of the stack, with the assertion in its body.
        assert b"client_assertion=" in body
        raise RuntimeError("the connection pool is broken")

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    exchange = Exchange(NORTHWIND, clouds.current(), PORTAL_APP)
    try:
        exchange.request("https://graph.microsoft.com/.default")
    except RuntimeError:
        exc_info = sys.exc_info()

    _assert_no_token(_reports(exc_info), assertion, "in request")


def test_a_token_in_any_variable_is_removed_even_from_the_debug_page(sandbox, settings):
    settings.DEBUG = True  # the DEBUG page shows every variable
    settings.ADMINS = [("Portal admins", "admins@fabrikam-mssp.example")]
    planted = identity.assertion()
    try:
        raise ValueError(f"unexpected answer for {planted[:20]}…")
    except ValueError:
        exc_info = sys.exc_info()
    reports = _reports(exc_info)

    assert "planted" in reports["html report"]
    _assert_no_token(reports, planted, "test_a_token_in_any_variable")
