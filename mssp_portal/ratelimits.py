"""Per-address rate limits (django-ratelimit), counted in the shared cache so they hold
across gunicorn workers and hosts (mssp_portal/cache.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from mssp_portal.addresses import client_address
from mssp_portal.errors import too_many_requests

View = Callable[..., HttpResponse]


def address_key(group: str, request: HttpRequest) -> str:
    """The client's address; IPv6 by its /64, which one subscriber commonly holds whole."""
    address = client_address(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def over_limit(request: HttpRequest, group: str, rate: str) -> int | None:
    """Count this request in `group` for its address. Seconds until the count starts
    again when the address is over `rate` (django-ratelimit's "30/m"); else None."""
    usage = get_usage(request, group=group, key=address_key, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def limit_per_address(group: str, setting: str) -> Callable[[View], View]:
    """Answer 429 (the branded page, with Retry-After) once the client's address has sent
    more requests to `group` than the rate named by `setting` allows. Requests over the
    limit are not passed to the view: nothing is read or written for them."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            retry_after = over_limit(request, group, getattr(settings, setting))
            if retry_after is not None:
                return too_many_requests(request, retry_after=retry_after)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
