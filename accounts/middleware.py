"""Session lifetime for staff, and the Django admin kept to superusers."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control

from accounts import graph, users
from accounts.models import StaffIdentity
from audit.log import actor_of, record

SIGNED_IN_AT = "accounts.signed_in_at"
LAST_SEEN_AT = "accounts.last_seen_at"
# Requests the page makes by itself (dashboard self-refresh) say so with this header; they
# are not activity, or an open dashboard would keep its session alive forever.
BACKGROUND_HEADER = "HTTP_X_PORTAL_BACKGROUND"
# Writing the session on every request would be a database write per page; once a minute
# is precise enough for a time-out counted in minutes.
_TOUCH_EVERY = 60


def start_session(request: HttpRequest) -> None:
    """Stamp a new sign-in (call right after `login()`)."""
    now = int(time.time())
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_SEEN_AT] = now
    request.session.set_expiry(settings.SESSION_COOKIE_AGE)


class SessionTimeoutMiddleware:
    """Idle (SESSION_IDLE_TIMEOUT) and absolute (SESSION_COOKIE_AGE) time-outs, counted from
    stamps in the server-side session, so neither depends on the cookie the browser keeps.
    Authenticated responses are never stored by caches (no-store)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            expired = self._expired(request)
            if expired:
                actor = actor_of(request)
                logout(request)
                record("session.expired", "success", actor=actor, detail={"kind": expired})
                messages.info(request, "Your session ended. Please sign in again.")
                return redirect_to_login(request.get_full_path(), reverse(settings.LOGIN_URL))
        response = self.get_response(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response

    def _expired(self, request: HttpRequest) -> str:
        now = int(time.time())
        session = request.session
        signed_in = session.get(SIGNED_IN_AT)
        last_seen = session.get(LAST_SEEN_AT)
        if signed_in is None or last_seen is None:
            return "unstamped"  # a session from before the stamps: treat as ended
        if now - signed_in >= settings.SESSION_COOKIE_AGE:
            return "absolute"
        if now - last_seen >= settings.SESSION_IDLE_TIMEOUT:
            return "idle"
        if request.META.get(BACKGROUND_HEADER) != "1" and now - last_seen >= _TOUCH_EVERY:
            session[LAST_SEEN_AT] = now
        return ""


class RoleRecheckMiddleware:
    """A role or group removed in Entra stops working within STAFF_ROLE_RECHECK seconds:
    past that since the last read, the user's roles and groups are read again from Graph
    before the request runs (accounts.users.recheck). No portal role any more, or Graph
    unable to say: the session ends and the user is sent to sign in again. Local
    (break-glass) accounts have no Entra identity and are not re-checked."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            identity = StaffIdentity.objects.filter(user=user).first()
            if identity is not None and users.recheck_due(identity):
                ended = self._recheck(identity)
                # Permissions read before the re-check are cached on the user.
                for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
                    if hasattr(user, cache):
                        delattr(user, cache)
                if ended:
                    actor = actor_of(request)
                    logout(request)
                    record("session.expired", "success", actor=actor, detail={"kind": ended})
                    messages.info(request, ENDED_MESSAGES[ended])
                    return redirect_to_login(request.get_full_path(), reverse(settings.LOGIN_URL))
        return self.get_response(request)

    @staticmethod
    def _recheck(identity: StaffIdentity) -> str:
        try:
            still_staff = users.recheck(identity)
        except graph.DirectoryUnavailable:
            return "role_check_unavailable"
        return "" if still_staff else "role_removed"


ENDED_MESSAGES = {
    "role_removed": "Your portal role was removed in Microsoft Entra, so your session ended. "
    "If you still need the portal, ask a portal administrator to assign you a role.",
    "role_check_unavailable": "Your session ended: the portal could not check your roles with "
    "Microsoft Entra. Sign in again.",
}


class AdminSiteGateMiddleware:
    """The Django admin is for local superusers (break-glass) only: others get 403 before
    the admin sees the request, and its own password form is replaced by the portal's
    sign-in (accounts.admin), which is throttled and audited."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._prefix is None:
            self._prefix = reverse("admin:index")
        if request.path.startswith(self._prefix):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse(settings.LOGIN_URL))
            if not (user.is_active and user.is_superuser):
                record(
                    "admin_site.refused",
                    "denied",
                    actor=actor_of(request),
                    detail={"path": request.path},
                )
                raise PermissionDenied
        return self.get_response(request)
