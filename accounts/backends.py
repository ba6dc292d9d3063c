"""The password backend, throttled (accounts.throttle)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import throttle
from audit.log import record


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses to check a password while the username or the address is
    locked. Every password form (ours, the admin's) goes through `authenticate()`, so none
    of them escapes the throttle."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get("username")
        if throttle.is_locked(username, throttle.client_ip(request)):
            # PermissionDenied stops authenticate() at once and sends user_login_failed.
            raise PermissionDenied("too many failed sign-ins")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _record_failed_login(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = credentials.get("username")
    ip = throttle.client_ip(request)
    throttle.record_failure(username, ip)
    locked = throttle.is_locked(username, ip)
    record(
        "user.sign_in_refused",
        "denied",
        actor=throttle.normalise(username) or "anonymous",
        detail={
            "method": "local",
            "reason": "throttled" if locked else "bad_credentials",
            "ip": ip or "-",
        },
    )
