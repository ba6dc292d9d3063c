"""Probing leaves a trace: every 403 and 404 answered to a signed-in user is an
`access.denied` audit event (a scoped operator trying tenant ids, an operator trying admin
pages). Counted per actor in the shared cache: past ACCESS_DENIED_AUDIT_RATE, one more
event says the rest of the window is not recorded, and nothing more is written until the
window ends, so a flood cannot fill the table. The log line is written every time."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from audit.log import actor_of, record
from mssp_portal.untrusted import for_log

logger = logging.getLogger("mssp_portal.access")

DENIED = (403, 404)


class AccessDeniedAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code in DENIED:
            self._audit(request, response.status_code)
        return response

    def _audit(self, request: HttpRequest, status: int) -> None:
        actor = actor_of(request)
        if actor == "anonymous":
            return  # scanners' 404s are not staff probing; staff pages send them to sign-in
        logger.info(
            "access denied status=%s actor=%s path=%s", status, actor, for_log(request.path)
        )
        usage = get_usage(
            request,
            group="audit.access_denied",
            key=lambda group, request: actor,
            rate=settings.ACCESS_DENIED_AUDIT_RATE,
            increment=True,
        )
        if usage is None:
            return
        detail: dict[str, object] = {
            "status": status,
            "method": request.method,
            "path": request.path,
        }
        if usage["count"] > usage["limit"] + 1:
            return
        if usage["count"] == usage["limit"] + 1:
            detail["not_recorded"] = f"further refusals for {max(1, usage['time_left'])} s"
        record("access.denied", "denied", actor=actor, detail=detail)
