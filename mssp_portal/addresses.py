"""Who is asking: the client's address, as far as the deployment's proxies vouch for it."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address. With TRUSTED_PROXY_HOPS = 0 the peer (REMOTE_ADDR), and any
    X-Forwarded-For is ignored: the client may have written it. With N hops, the entry the
    Nth proxy from here appended: each proxy appends the address it was connected from, so
    the rightmost N entries are the proxies' own writing and everything further left is
    the client's. A header shorter than that, or an entry that is not an address, means
    the request did not come through the proxies: the peer address is used."""
    peer = request.META.get("REMOTE_ADDR", "") or ""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return peer
    entries = [e.strip() for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    entries = [e for e in entries if e]
    if len(entries) < hops:
        return peer
    candidate = entries[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer
