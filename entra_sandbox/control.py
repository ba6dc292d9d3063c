"""The control API (``/_sandbox/…`` on the https listener) and its Python client.

Control requests are not counted and never faulted. Changes apply to the next request.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from .directory import ScenarioError
from .errors import json_response
from .routing import Route
from .state import SandboxState


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ControlError(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise ControlError(400, "body must be a JSON object")
    return body


def _endpoint(methods: Mapping[str, Callable[..., Any]]) -> Callable[..., Response]:
    """One control path with a handler per HTTP method; handlers return JSON data."""

    def handle(state: SandboxState, request: Request, **args: Any) -> Response:
        handler = methods.get(request.method)
        if handler is None:
            return json_response({"error": f"method {request.method} not allowed"}, status=405)
        try:
            return json_response(handler(state, request, **args))
        except ControlError as exc:
            return json_response({"error": str(exc)}, status=exc.status)
        except (ScenarioError, ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        except KeyError as exc:
            return json_response({"error": f"not found: {exc.args[0]}"}, status=404)

    return handle


def _tenant_id(state: SandboxState, ref: str) -> str:
    tenant = state.directory.tenant(ref)
    if tenant is None:
        raise KeyError(ref)
    return tenant.id


def _add_fault(state: SandboxState, request: Request) -> dict[str, Any]:
    body = _json_body(request)
    allowed = {"target", "tenant", "latency_ms", "status", "retry_after", "hang", "count", "tid"}
    unknown = set(body) - allowed
    if unknown:
        raise ControlError(400, f"unknown fault fields {sorted(unknown)}")
    if "target" not in body:
        raise ControlError(400, "target is required")
    tenant = body.get("tenant")
    if tenant:
        resolved = state.directory.tenant(tenant)
        # A fault may target a tenant that is deleted (or never existed) on purpose.
        body["tenant"] = resolved.id if resolved else str(tenant).lower()
    return {"id": state.faults.add(**body).id}


def _clear_faults(state: SandboxState, request: Request) -> dict[str, Any]:
    state.faults.clear()
    return {"faults": []}


def _set_clock(state: SandboxState, request: Request) -> dict[str, Any]:
    body = _json_body(request)
    skew = body.get("skew_seconds")
    if not isinstance(skew, int) or isinstance(skew, bool):
        raise ControlError(400, "skew_seconds must be an integer")
    state.clock.skew_seconds = skew
    return {"skew_seconds": skew, "now": state.clock.now()}


def _tenant_action(action: str) -> Callable[..., dict[str, Any]]:
    def handle(state: SandboxState, request: Request, tenant: str) -> dict[str, Any]:
        body = _json_body(request)
        tid = _tenant_id(state, tenant)
        application = body.get("application")
        directory = state.directory
        if action == "revoke":
            changed = directory.revoke(tid, application)
        elif action == "roles":
            roles = body.get("roles")
            if not isinstance(roles, dict):
                raise ControlError(400, "roles must be an object resource -> [names]")
            changed = directory.set_roles(tid, roles, application)
        else:
            changed = directory.set_enabled(tid, action == "enable", application)
        return {"tenant": tid, "applications": changed}

    return handle


def _delete_tenant(state: SandboxState, request: Request, tenant: str) -> dict[str, Any]:
    tid = _tenant_id(state, tenant)
    state.directory.delete_tenant(tid)
    return {"deleted": tid}


def _update_application(state: SandboxState, request: Request, client_id: str) -> dict[str, Any]:
    app = state.directory.update_application(client_id, _json_body(request))
    return {"client_id": app.client_id}


def _propagation(state: SandboxState) -> dict[str, Any]:
    directory = state.directory
    with directory.lock:
        return {
            "seconds": directory.settings["consent_propagation_seconds"],
            "tenants": {
                t.id: t.consent_propagation_seconds
                for t in directory.tenants.values()
                if t.consent_propagation_seconds is not None
            },
        }


def _set_propagation(state: SandboxState, request: Request) -> dict[str, Any]:
    body = _json_body(request)
    unknown = set(body) - {"seconds", "tenant"}
    if unknown:
        raise ControlError(400, f"unknown fields {sorted(unknown)}")
    if "seconds" not in body:
        raise ControlError(400, "seconds is required (null removes a tenant's override)")
    tenant = body.get("tenant")
    state.directory.set_consent_propagation(
        body["seconds"], _tenant_id(state, tenant) if tenant else None
    )
    return _propagation(state)


def _user_json(tenant_id: str, user: Any) -> dict[str, Any]:
    return {"tenant": tenant_id, **vars(user)}


def _update_user(state: SandboxState, request: Request, user: str) -> dict[str, Any]:
    changed = state.directory.update_user(user, _json_body(request))
    tenant, _ = state.directory.find_user(changed.object_id)
    return _user_json(tenant.id, changed)


def _revoke_sessions(state: SandboxState, request: Request, user: str) -> dict[str, Any]:
    changed = state.directory.revoke_sessions(user, state.clock.now())
    tenant, _ = state.directory.find_user(changed.object_id)
    return _user_json(tenant.id, changed)


def routes() -> list[Route]:
    def r(rule: str, **methods: Callable[..., Any]) -> Route:
        return Route(f"/_sandbox{rule}", None, _endpoint(methods))

    return [
        r("", GET=lambda s, q: s.describe()),
        r(
            "/counters",
            GET=lambda s, q: s.counters.snapshot(),
            DELETE=lambda s, q: (s.counters.reset(), s.counters.snapshot())[1],
        ),
        r(
            "/faults",
            GET=lambda s, q: {"faults": s.faults.list()},
            POST=_add_fault,
            DELETE=_clear_faults,
        ),
        r(
            "/clock",
            GET=lambda s, q: {"skew_seconds": s.clock.skew_seconds, "now": s.clock.now()},
            POST=_set_clock,
        ),
        r("/tenants/<tenant>/revoke", POST=_tenant_action("revoke")),
        r("/tenants/<tenant>/disable", POST=_tenant_action("disable")),
        r("/tenants/<tenant>/enable", POST=_tenant_action("enable")),
        r("/tenants/<tenant>/roles", POST=_tenant_action("roles")),
        r("/tenants/<tenant>", DELETE=_delete_tenant),
        r("/applications/<client_id>", PATCH=_update_application),
        r("/consent-propagation", GET=lambda s, q: _propagation(s), POST=_set_propagation),
        r("/users/<user>", PATCH=_update_user),
        r("/users/<user>/revoke-sessions", POST=_revoke_sessions),
        r("/reset", POST=lambda s, q: (s.reset(), s.describe())[1]),
        r("/issued-tokens", GET=lambda s, q: {"tokens": s.tokens.issued()}),
        r("/directory", GET=lambda s, q: s.directory.to_json()),
    ]


class ControlClient:
    """HTTP client of the control API. Raises ControlError for any non-2xx answer."""

    def __init__(self, base_url: str, ca_path: str | None = None, timeout: float = 30) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("the control URL must be http(s)")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=ca_path) if ca_path else None

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - scheme checked in __init__
                request, timeout=self.timeout, context=self._ssl
            ) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise ControlError(exc.code, str(message)) from None

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/counters")

    def reset_counters(self) -> dict[str, Any]:
        return self._call("DELETE", "/counters")

    def add_fault(self, **fault: Any) -> str:
        return self._call("POST", "/faults", fault)["id"]

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_clock_skew(self, seconds: int) -> dict[str, Any]:
        return self._call("POST", "/clock", {"skew_seconds": seconds})

    def _tenant(self, tid: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/tenants/{tid}/{action}", body)

    def revoke(self, tid: str, application: str | None = None) -> dict[str, Any]:
        return self._tenant(tid, "revoke", {"application": application} if application else {})

    def disable(self, tid: str, application: str | None = None) -> dict[str, Any]:
        return self._tenant(tid, "disable", {"application": application} if application else {})

    def enable(self, tid: str, application: str | None = None) -> dict[str, Any]:
        return self._tenant(tid, "enable", {"application": application} if application else {})

    def set_roles(
        self, tid: str, roles: Mapping[str, list[str]], application: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"roles": dict(roles)}
        if application:
            body["application"] = application
        return self._tenant(tid, "roles", body)

    def delete_tenant(self, tid: str) -> dict[str, Any]:
        return self._call("DELETE", f"/tenants/{tid}")

    def update_application(self, client_id: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/applications/{client_id}", fields)

    def set_consent_propagation(self, seconds: int | None, tenant: str | None = None) -> dict:
        """How long after an admin consent app-only tokens still fail with AADSTS700016:
        for every tenant, or one tenant's override (`seconds=None` removes it)."""
        body: dict[str, Any] = {"seconds": seconds}
        if tenant:
            body["tenant"] = tenant
        return self._call("POST", "/consent-propagation", body)

    def update_user(self, user: str, **fields: Any) -> dict[str, Any]:
        """Change a user (object id or UPN): `app_roles`, `groups`, `enabled`."""
        return self._call("PATCH", f"/users/{user}", fields)

    def revoke_sessions(self, user: str) -> dict[str, Any]:
        """Graph's revokeSignInSessions: the user's refresh tokens stop working."""
        return self._call("POST", f"/users/{user}/revoke-sessions", {})

    def reset(self) -> dict[str, Any]:
        """Restore the scenario's directory, clear faults and clock skew."""
        return self._call("POST", "/reset", {})

    def issued_tokens(self) -> list[str]:
        return self._call("GET", "/issued-tokens")["tokens"]

    def directory(self) -> dict[str, Any]:
        return self._call("GET", "/directory")
