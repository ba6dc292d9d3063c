"""The portal's own error pages: what happened, what to do, a reference id that is in the
log, and never a debug page or a stack trace."""

from __future__ import annotations

import logging
import re

import pytest
from django.test import Client, RequestFactory

from mssp_portal import errors

pytestmark = pytest.mark.django_db


def _reference(body: str) -> str:
    match = re.search(r"quote reference <code>([0-9a-f-]{36})</code>", body)
    assert match, body
    return match.group(1)


def test_a_mistyped_invitation_link_gets_the_branded_404(client: Client, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mssp_portal.errors"):
        response = client.get("/consent/invite/not-a-guid/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in body
    assert "check that you opened the whole link" in body
    assert "Fabrikam Security" in body
    assert _reference(body) in caplog.text
    for debug in ("Traceback", "URLconf", "Using the URLconf", "DEBUG = True"):
        assert debug not in body


def test_an_operator_on_an_admin_page_gets_the_styled_403(operator_client: Client) -> None:
    response = operator_client.get("/invitations/")
    body = response.content.decode()
    assert response.status_code == 403
    assert "<h1>You do not have access to this page</h1>" in body
    assert "Portal.Admin" in body
    assert "portal.css" in body
    assert "Back to the tenant console" in body
    _reference(body)


def test_the_500_page_needs_nothing_from_the_request_and_shows_no_trace(caplog) -> None:
    request = RequestFactory().get("/somewhere/")
    with caplog.at_level(logging.ERROR, logger="mssp_portal.errors"):
        response = errors.server_error(request)
    body = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong on our side</h1>" in body
    assert _reference(body) in caplog.text
    assert "Traceback" not in body


def test_a_bad_request_gets_the_branded_400() -> None:
    response = errors.bad_request(RequestFactory().get("/x/"), ValueError("no"))
    assert response.status_code == 400
    assert "<h1>The request could not be understood</h1>" in response.content.decode()


def test_the_urlconf_uses_these_handlers() -> None:
    from mssp_portal import urls

    assert urls.handler404 == "mssp_portal.errors.page_not_found"
    assert urls.handler500 == "mssp_portal.errors.server_error"
