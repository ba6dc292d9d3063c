"""The portal's own 400, 403, 404 and 500 pages: what happened, what to do, and a reference
id that is also in the log line. Never a stack trace, whatever DEBUG says about the rest."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from mssp_portal.untrusted import for_log

logger = logging.getLogger("mssp_portal.errors")

PAGES = {
    400: (
        "The request could not be understood",
        [
            "Something in the address or the form was not what this page expects, so nothing "
            "was done. Go back, reload the page and try again.",
        ],
    ),
    403: (
        "You do not have access to this page",
        [
            "Your account is signed in but its role does not allow this page or action. If "
            "you need it, ask a portal admin to give your account the role it needs "
            "(Portal.Admin for admin actions) on the portal's app in Entra, then sign in again.",
        ],
    ),
    404: (
        "Page not found",
        [
            "The address may be incomplete or mistyped, or the page no longer exists. If you "
            "followed a link from a message, check that you opened the whole link; if it still "
            "does not work, ask the sender for a new one.",
        ],
    ),
    429: (
        "Too many requests",
        [
            "Your network address has sent this page more requests than the portal "
            "accepts in a short time, so this one was not processed and nothing was "
            "recorded. Wait {wait}, then open the link again or press the button once.",
        ],
    ),
    500: (
        "Something went wrong on our side",
        [
            "The error is logged with the reference below and the team can look it up. "
            "Please try again in a few minutes; if it keeps happening, contact us with the "
            "reference.",
        ],
    ),
}


def _context(status: int, reference: uuid.UUID) -> dict[str, object]:
    title, lines = PAGES[status]
    return {"status": status, "title": title, "lines": lines, "reference": reference}


def _page(request: HttpRequest, status: int) -> HttpResponse:
    reference = uuid.uuid4()
    logger.warning("%s on %s reference=%s", status, for_log(request.path, 200), reference)
    return render(request, "errors/page.html", _context(status, reference), status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Rendered without the request's context processors: whatever failed (the database, a
    # session) must not fail this page too. Django has logged the exception already.
    reference = uuid.uuid4()
    logger.error("500 on %s reference=%s", for_log(request.path, 200), reference)
    context = {**_context(500, reference), "MSSP_NAME": settings.MSSP_NAME}
    return HttpResponse(render_to_string("errors/page.html", context), status=500)


def too_many_requests(request: HttpRequest, *, retry_after: int = 60) -> HttpResponse:
    """A rate limit answered (mssp_portal.ratelimits): nothing was done or stored for this
    request. The page says when the address may try again."""
    reference = uuid.uuid4()
    logger.warning("429 on %s reference=%s", for_log(request.path, 200), reference)
    minutes = max(1, -(-retry_after // 60))
    wait = "a minute" if minutes == 1 else f"{minutes} minutes"
    context = _context(429, reference)
    context["lines"] = [line.format(wait=wait) for line in context["lines"]]
    response = render(request, "errors/page.html", context, status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response
