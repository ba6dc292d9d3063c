"""Throttling of password sign-ins (local break-glass accounts only; staff use Entra).

Failures are rows in the database, so every web worker sees the same count. A username is
locked after LOGIN_FAILURE_LIMIT failures within LOGIN_FAILURE_WINDOW seconds, and an address
after LOGIN_FAILURE_IP_LIMIT (guessing across many usernames). While locked, the password is
not even checked, and the attempt counts as one more failure: the window slides.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from accounts.models import LoginFailure
from mssp_portal.addresses import client_address


def _limits() -> tuple[int, int, int]:
    return (
        getattr(settings, "LOGIN_FAILURE_LIMIT", 5),
        getattr(settings, "LOGIN_FAILURE_IP_LIMIT", 20),
        getattr(settings, "LOGIN_FAILURE_WINDOW", 15 * 60),
    )


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as TRUSTED_PROXY_HOPS defines it (mssp_portal.addresses)."""
    if request is None:
        return None
    return client_address(request) or None


def normalise(username: str | None) -> str:
    return (username or "").strip().lower()[:150]


def is_locked(username: str | None, ip: str | None) -> bool:
    user_limit, ip_limit, window = _limits()
    recent = LoginFailure.objects.recent(window)
    if recent.filter(username=normalise(username)).count() >= user_limit:
        return True
    return ip is not None and recent.filter(ip=ip).count() >= ip_limit


def record_failure(username: str | None, ip: str | None) -> None:
    LoginFailure.objects.create(username=normalise(username), ip=ip)


def clear(username: str | None) -> None:
    """A successful sign-in forgets that username's failures."""
    LoginFailure.objects.filter(username=normalise(username)).delete()
