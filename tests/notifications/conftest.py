"""Fixtures for notifications: receivers that really listen, destinations pointing at them,
and the verification fixtures, so events come from real verifications against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications.models import Destination, new_secret
from tests.notifications.receivers import SmtpReceiver, WebhookReceiver
from tests.verification.conftest import (  # noqa: F401 (fixtures)
    cold_assertion,
    consent,
    fast_retries,
    make_tenant,
    verify,
)


@pytest.fixture(autouse=True)
def local_receivers(settings) -> None:
    # The receivers listen on 127.0.0.1: development rules, which the SSRF tests turn off.
    settings.NOTIFY_ALLOW_INSECURE_URLS = True
    settings.NOTIFY_HTTP_TIMEOUT = 2.0
    settings.PORTAL_BASE_URL = "https://portal.fabrikam.example"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=new_secret()).start()
    yield hook
    hook.stop()


@pytest.fixture
def smtp(settings) -> Iterator[SmtpReceiver]:
    server = SmtpReceiver().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    server.stop()


@pytest.fixture
def webhook(db, receiver) -> Destination:
    return Destination.objects.add(
        kind=Destination.Kind.WEBHOOK,
        name="SOC webhook",
        target=receiver.url,
        secret=receiver.secret,
        actor="admin@fabrikam.example",
    )


@pytest.fixture
def mailbox(db, smtp) -> Destination:
    return Destination.objects.add(
        kind=Destination.Kind.EMAIL,
        name="SOC on-call",
        target="soc@fabrikam.example",
        actor="admin@fabrikam.example",
    )
