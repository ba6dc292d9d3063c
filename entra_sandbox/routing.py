"""The request pipeline shared by every listener: route, count, inject faults, handle.

A route names its endpoint *kind* (what counters and faults key on) and knows how to find
the tenant a request is about and how a faulted response looks for that kind of endpoint.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import errors
from .directory import TENANT_ALIASES
from .errors import EntraError, json_response
from .state import SandboxState

logger = logging.getLogger("entra_sandbox")

# Entra's real limits are unknown; 64 KiB is far above any legitimate token request.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[..., Response]
TenantOf = Callable[[SandboxState, Request, dict[str, Any]], str | None]
FaultResponse = Callable[[SandboxState, Request, int, int | None], Response]


# Set in the WSGI environ to the tenant id a fault wants the request's tokens to name.
FAULT_TID = "entra_sandbox.fault_tid"
# Set in the WSGI environ when the request body has been read to its end, so the server may
# keep the connection open for the next request (see server.QuietRequestHandler).
KEEP_ALIVE = "entra_sandbox.keep_alive"
# Bodies up to this size are read and thrown away to keep a connection; larger ones close it.
MAX_DRAIN_BYTES = 2 * 1024 * 1024


def _drain(request: Request) -> bool:
    """Read what the handler left of the body; whether the connection can be reused."""
    length = request.content_length
    chunked = bool(request.environ.get("wsgi.input_terminated"))
    if not chunked and not length:
        return True
    if length is not None and length > MAX_DRAIN_BYTES:
        return False
    try:
        request.max_content_length = MAX_DRAIN_BYTES
        stream = request.stream
        drained = 0
        while chunk := stream.read(64 * 1024):
            drained += len(chunk)
            if drained > MAX_DRAIN_BYTES:
                return False
    except Exception:  # a broken body: give the connection up rather than misparse it
        return False
    return True


class SandboxRequest(Request):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES


def correlation_id(request: Request) -> str | None:
    """Entra echoes the client's request id as the correlation id."""
    for name in ("client-request-id", "x-ms-client-request-id"):
        value = request.headers.get(name)
        if value:
            try:
                return str(uuid.UUID(value))
            except ValueError:
                continue
    return None


def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body, or an Entra error for an oversized or unparsable one."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.malformed_request()
    try:
        form = request.form
    except RequestEntityTooLarge:
        raise errors.malformed_request() from None
    if (
        request.content_length
        and not form
        and request.mimetype
        not in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        )
    ):
        raise errors.malformed_request()
    return form.to_dict()


def tenant_from_path(state: SandboxState, request: Request, args: dict[str, Any]) -> str | None:
    ref = args.get("tenant")
    if not ref or ref.lower() in TENANT_ALIASES:
        return None
    tenant = state.directory.tenant(ref)
    return tenant.id if tenant else ref.lower()


def entra_fault(
    state: SandboxState, request: Request, status: int, retry_after: int | None
) -> Response:
    error = (
        errors.throttled(retry_after) if status == 429 else errors.transient(status, retry_after)
    )
    return error.response(state.clock.now(), correlation_id(request))


@dataclass
class Route:
    rule: str
    kind: str | None  # None: not counted, never faulted (the control API)
    handler: Handler
    tenant_of: TenantOf = tenant_from_path
    fault: FaultResponse = entra_fault


class Listener:
    """A WSGI application serving a set of routes."""

    def __init__(self, state: SandboxState, routes: Iterable[Route]) -> None:
        self.state = state
        self.routes = list(routes)
        self.map = Map(
            [Rule(r.rule, endpoint=i) for i, r in enumerate(self.routes)],
            strict_slashes=False,
            merge_slashes=False,
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = SandboxRequest(environ)
        response = self.dispatch(request)
        environ[KEEP_ALIVE] = _drain(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        try:
            index, args = self.map.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return json_response(
                {
                    "error": {
                        "code": "NotFound",
                        "message": f"No sandbox endpoint at {request.path}",
                    }
                },
                status=exc.code or 404,
            )
        route = self.routes[index]
        state = self.state
        if route.kind is not None:
            try:
                tenant = route.tenant_of(state, request, args)
            except Exception:  # routing hints must never break a request
                tenant = None
            state.counters.record(route.kind, tenant)
            effect = state.faults.take(route.kind, tenant)
            if effect.status:
                return route.fault(state, request, effect.status, effect.retry_after)
            if effect.tid:
                request.environ[FAULT_TID] = effect.tid
        try:
            return route.handler(state, request, **args)
        except EntraError as exc:
            return exc.response(state.clock.now(), correlation_id(request))
        except HTTPException as exc:
            return json_response(
                {"error": {"code": exc.name, "message": exc.description}}, status=exc.code or 400
            )
        except Exception:
            # Never a traceback on the wire; the log keeps it for whoever runs the sandbox.
            logger.exception("sandbox handler failed: %s %s", request.method, request.path)
            return errors.transient(500, None).response(state.clock.now(), correlation_id(request))
