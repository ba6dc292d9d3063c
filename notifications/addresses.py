"""Where the portal may send a notification, and the one way it sends HTTP.

The portal runs next to a managed-identity endpoint (169.254.169.254 on Azure), so an admin
who can type a destination URL must not be able to make the portal POST to it or to anything
else inside the network. A destination URL is https, and every address its host resolves to
is a public one; both are checked when the destination is saved and again at each send, and
the connection goes to the very address that was checked (no second DNS lookup a rebinding
name could answer differently). Redirects are never followed.

`NOTIFY_ALLOW_INSECURE_URLS` (or `DEBUG`) lifts both rules, for development and tests.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

import requests.certs
import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError

# Receivers answer with a short acknowledgement; more is not read.
MAX_RESPONSE_BYTES = 64 * 1024


class Refused(ValidationError):
    """This URL is not a place the portal sends to."""


def insecure_allowed() -> bool:
    return bool(settings.NOTIFY_ALLOW_INSECURE_URLS or settings.DEBUG)


def check_url(url: str) -> list[str]:
    """The addresses to connect to for `url`, or Refused saying why not."""
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        raise Refused("This is not a URL.") from None
    insecure = insecure_allowed()
    if parts.scheme not in ("https", "http") or not parts.host:
        raise Refused("Enter a full https:// URL.")
    if parts.scheme != "https" and not insecure:
        raise Refused("Only https:// URLs are allowed: notifications carry tenant details.")
    if parts.auth:
        raise Refused("Put no user name or password in the URL.")
    host = parts.host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"The host name {host} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not insecure:
        for address in addresses:
            if not _public(address):
                raise Refused(
                    f"{host} resolves to {address}, a private, loopback or link-local address: "
                    "the portal only sends to public addresses."
                )
    return addresses


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return not self.error and self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to `url` once: no redirects, no retries here, NOTIFY_HTTP_TIMEOUT."""
    started = time.monotonic()

    def answer(status: int | None, error: str = "") -> Answer:
        return Answer(status, error[:300], int((time.monotonic() - started) * 1000))

    try:
        addresses = check_url(url)
    except Refused as exc:
        return answer(None, "refused: " + " ".join(exc.messages))
    parts = urllib3.util.parse_url(url)
    host = parts.host.strip("[]")
    timeout = urllib3.Timeout(
        connect=settings.NOTIFY_HTTP_TIMEOUT, read=settings.NOTIFY_HTTP_TIMEOUT
    )
    options: dict[str, object] = {"timeout": timeout, "retries": False, "maxsize": 1}
    if parts.scheme == "https":
        pool_class: type[urllib3.HTTPConnectionPool] = urllib3.HTTPSConnectionPool
        # Connect to the checked address; verify the certificate for the name.
        options.update(
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.NOTIFY_CA_BUNDLE or requests.certs.where(),
        )
    else:
        pool_class = urllib3.HTTPConnectionPool
    port = parts.port or (443 if parts.scheme == "https" else 80)
    pool = pool_class(addresses[0], port, **options)
    host_header = parts.netloc
    try:
        response = pool.urlopen(
            "POST",
            parts.request_uri,
            body=body,
            headers={**headers, "Host": host_header, "User-Agent": "MSSP-Portal-Notifications"},
            redirect=False,
            retries=False,
            preload_content=False,
        )
        try:
            response.read(MAX_RESPONSE_BYTES)
        finally:
            response.release_conn()
        return answer(response.status)
    except urllib3.exceptions.TimeoutError:
        return answer(None, "timed out")
    except urllib3.exceptions.SSLError:
        return answer(None, "TLS error: the certificate was not accepted")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return answer(None, f"connection failed: {type(exc).__name__}")
    finally:
        pool.close()
