"""The browser pages on the plain-http login listener: admin consent (v2 and v1), the
authorization endpoint (staff sign-in with PKCE) and sign-out.

Instead of passwords the pages let the visitor pick a sandbox user. Errors that Entra shows
on its own page (unknown app, unregistered redirect URI, …) are shown here too, and never
redirect anywhere; errors Entra reports to the app are redirected to the registered URI.
Every value from the request is escaped.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from markupsafe import Markup
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from . import errors
from .catalog import RESOURCES, Resource, describe_permission, resource_for_identifier
from .directory import Application, Tenant, User
from .errors import EntraError
from .routing import Route, tenant_from_path
from .state import AuthorizationCode, SandboxState
from .sts import OIDC_SCOPES, resolve_tenant

_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")

# Plain text on purpose: it is escaped into the page, so it must hold no <, >, & or quotes.
_STYLE = """
body{font-family:system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;
  box-shadow:0 2px 6px #0003}
h1{font-size:1.4rem;font-weight:600}.muted{color:#555;font-size:.9rem}
.error{border-left:4px solid #a4262c;padding:.5rem 1rem;background:#fde7e9}
select,button{font-size:1rem;padding:.4rem .8rem;margin:.3rem .3rem .3rem 0}
button[value=accept],#sign-in{background:#0067b8;color:#fff;border:0}
li{margin:.3rem 0}code{font-size:.85rem}
"""


# -- rendering ---------------------------------------------------------------------------


def _page(title: str, body: Markup, status: int = 200) -> Response:
    html = Markup(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>{title} | Sandbox Entra ID</title><style>{style}</style></head>"
        "<body><main><p class='muted'>Sandbox Entra ID (not Microsoft)</p>"
        "<h1 id='title'>{title}</h1>{body}</main></body></html>"
    ).format(title=title, style=_STYLE, body=body)
    return Response(str(html), status=status, mimetype="text/html")


def _error_page(error: EntraError, now: int, status: int = 400) -> Response:
    body = error.body(now)
    return _page(
        "Sorry, but we're having trouble signing you in.",
        Markup(
            "<div class='error' role='alert'><p id='error-description'>{description}</p>"
            "<p class='muted'>Error code: <code id='error-code'>AADSTS{code}</code></p></div>"
        ).format(description=body["error_description"].split("\r\n")[0], code=error.code),
        status=status,
    )


def _user_select(users: Iterable[User]) -> Markup:
    options = Markup("").join(
        Markup("<option value='{upn}'>{upn}</option>").format(upn=u.upn) for u in users
    )
    return Markup(
        "<p><label for='user'>Pick an account</label><br>"
        "<select name='user' id='user' required>{options}</select></p>"
    ).format(options=options)


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [
        (k, v) for k, v in params.items() if v is not None
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _form_post(uri: str, params: dict[str, str]) -> Response:
    """response_mode=form_post: an auto-submitting form (a button if scripts are off)."""
    fields = Markup("").join(
        Markup("<input type='hidden' name='{k}' value='{v}'>").format(k=k, v=v)
        for k, v in params.items()
        if v is not None
    )
    return _page(
        "Working…",
        Markup(
            "<form method='post' id='form-post' action='{uri}'>{fields}"
            "<button type='submit' id='continue'>Continue</button></form>"
            "<script>document.getElementById('form-post').submit()</script>"
        ).format(uri=uri, fields=fields),
    )


def _users_for(state: SandboxState, target: Tenant | str) -> list[User]:
    if isinstance(target, Tenant):
        return list(target.users)
    with state.directory.lock:
        return [u for t in state.directory.tenants.values() for u in t.users]


def _tenant_of_user(
    state: SandboxState, upn: str, allowed: list[User]
) -> tuple[Tenant, User] | None:
    with state.directory.lock:
        for tenant in state.directory.tenants.values():
            user = tenant.user(upn)
            if user is not None and any(u is user for u in allowed):
                return tenant, user
    return None


def _page_tenant(state: SandboxState, ref: str, *, aliases: tuple[str, ...]) -> Tenant | str:
    target = resolve_tenant(state, ref, aliases=True)
    if isinstance(target, str) and target not in aliases:
        raise errors.EntraError(
            90130,
            "invalid_request",
            "Application is not supported over the /common or /consumers endpoints. Please use "
            "the /organizations or tenant-specific endpoint.",
        )
    return target


def _registered_redirect(state: SandboxState, app: Application, requested: str | None) -> str:
    """The redirect URI to use; an unregistered one is an error page, never a redirect."""
    with state.directory.lock:
        registered = list(app.redirect_uris)
    if not requested:
        if registered:
            return registered[0]
        requested = ""
    if requested not in registered:
        raise errors.EntraError(
            50011,
            "invalid_request",
            f"The redirect URI '{requested}' specified in the request does not match the "
            f"redirect URIs configured for the application '{app.client_id}'. Make sure the "
            "redirect URI sent in the request matches one added to your application in the "
            "Azure portal.",
        )
    return requested


def _application(state: SandboxState, client_id: str | None, target: Tenant | str) -> Application:
    if not client_id:
        raise errors.missing_parameter("client_id")
    app = state.directory.application(client_id)
    if app is None:
        name = target.name if isinstance(target, Tenant) else target
        raise errors.application_not_found(client_id, name)
    if not app.enabled:
        raise errors.application_disabled(app.client_id, app.name)
    return app


def _check_audience(app: Application, tenant: Tenant) -> None:
    # A single-tenant app does not exist outside its home tenant.
    if not app.multi_tenant and tenant.id != app.tenant:
        raise errors.application_not_found(app.client_id, tenant.name)


# -- admin consent -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """What an admin consent request asks for. Entra grants application permissions only
    through `/.default`, which stands for every permission the app registration lists, on
    every API, whichever resource names it (the v1 endpoint always asks for that); other
    scopes ask for delegated permissions, which the sandbox lists but does not model."""

    roles: dict[str, list[str]]  # application permissions by resource key
    delegated: list[str]  # dynamic scopes as requested

    @classmethod
    def of(cls, app: Application, version: int, scope: str) -> _Request:
        registered = {key: list(names) for key, names in app.permissions.items() if names}
        if version == 1:
            return cls(registered, [])
        scopes = [s for s in scope.split() if s.lower() not in OIDC_SCOPES]
        dynamic = [s for s in scopes if not s.endswith("/.default")]
        return cls(registered if len(dynamic) < len(scopes) else {}, dynamic)

    def resources(self) -> list[str]:
        """Keys of the known resources asked for, in request order."""
        keys = list(self.roles)
        for scope in self.delegated:
            resource = resource_for_identifier(scope.rpartition("/")[0])
            if resource is not None and resource.key not in keys:
                keys.append(resource.key)
        return keys


def _requested_permissions(request: _Request, target: Tenant | str) -> Markup:
    def missing(key: str) -> Markup | str:
        if isinstance(target, Tenant) and key not in target.services:
            return Markup(" — not available in this organization")
        return ""

    items = []
    for key, names in request.roles.items():
        resource = RESOURCES[key]
        for name in names:
            items.append(
                Markup(
                    "<li data-permission='{key}/{name}'>{text} <span class='muted'>({api}: "
                    "<code>{name}</code>){missing}</span></li>"
                ).format(
                    key=key,
                    name=name,
                    text=describe_permission(key, name),
                    api=resource.display_name,
                    missing=missing(key),
                )
            )
    for scope in request.delegated:
        resource = resource_for_identifier(scope.rpartition("/")[0])
        items.append(
            Markup(
                "<li data-scope='{scope}'>Delegated permission <code>{scope}</code>"
                "<span class='muted'>{missing}</span></li>"
            ).format(scope=scope, missing=missing(resource.key) if resource else "")
        )
    if not items:
        return Markup("<p>No permissions.</p>")
    return Markup("<ul id='permissions'>{}</ul>").format(Markup("").join(items))


def _consent_denied(version: int, redirect_uri: str, state_param: str | None, now: int) -> Response:
    if version == 1:
        # The v1 documentation's sample carries neither state nor admin_consent.
        return redirect(
            _with_query(
                redirect_uri,
                {
                    "error": "permission_denied",
                    "error_description": "The admin canceled the request",
                },
            )
        )
    error = EntraError(
        65004, "consent_required", "The resource owner or authorization server denied the request."
    )
    return redirect(
        _with_query(
            redirect_uri,
            {
                "admin_consent": "True",
                "error": error.error,
                "error_description": error.body(now)["error_description"],
                "state": state_param,
            },
        )
    )


def _admin_consent(state: SandboxState, request: Request, tenant: str, version: int) -> Response:
    now = state.clock.now()
    args = request.args
    try:
        target = _page_tenant(
            state,
            tenant,
            aliases=("organizations",) if version == 2 else ("organizations", "common"),
        )
        app = _application(state, args.get("client_id"), target)
        redirect_uri = _registered_redirect(state, app, args.get("redirect_uri"))
        if isinstance(target, Tenant):
            _check_audience(app, target)
    except EntraError as exc:
        return _error_page(exc, now)
    state_param = args.get("state")
    if version == 2 and not args.get("scope"):
        error = errors.missing_parameter("scope")
        return redirect(
            _with_query(
                redirect_uri,
                {
                    "error": error.error,
                    "error_description": error.body(now)["error_description"],
                    "state": state_param,
                },
            )
        )
    users = _users_for(state, target)
    asked = _Request.of(app, version, args.get("scope", ""))

    if request.method == "POST":
        action = request.form.get("action")
        if action == "cancel":
            return _consent_denied(version, redirect_uri, state_param, now)
        if action == "decline":
            declined = EntraError(
                65004, "access_denied", "User declined to consent to access the app."
            )
            return redirect(
                _with_query(
                    redirect_uri,
                    {
                        "error": "access_denied",
                        "error_subcode": "cancel",
                        "error_description": declined.body(now)["error_description"],
                        "state": state_param,
                    },
                )
            )
        found = _tenant_of_user(state, request.form.get("user", ""), users)
        if action == "accept" and found is not None:
            user_tenant, user = found
            try:
                _check_audience(app, user_tenant)
                if not user.enabled:
                    raise errors.user_disabled()
            except EntraError as exc:
                return _error_page(exc, now)
            if not user.admin:
                return _need_admin(app, user, now)
            missing = [k for k in asked.resources() if k not in user_tenant.services]
            if missing:
                return _service_missing(
                    version, redirect_uri, state_param, user_tenant, RESOURCES[missing[0]], now
                )
            granted = state.directory.grant_admin_consent(
                user_tenant.id, app.client_id, now, asked.roles
            )
            if version == 1:
                params = {"tenant": user_tenant.id, "state": state_param, "admin_consent": "True"}
            else:
                scope = " ".join(
                    [f"{RESOURCES[k].uri}/{n}" for k, names in granted.items() for n in names]
                    + asked.delegated
                )
                params = {
                    "admin_consent": "True",
                    "tenant": user_tenant.id,
                    "scope": scope,
                    "state": state_param,
                }
            return redirect(_with_query(redirect_uri, params))
        return _consent_page(
            state,
            app,
            asked,
            target,
            users,
            status=400,
            problem="Pick an account of this organization.",
        )
    return _consent_page(state, app, asked, target, users)


def _service_missing(
    version: int,
    redirect_uri: str,
    state_param: str | None,
    tenant: Tenant,
    resource: Resource,
    now: int,
) -> Response:
    """AADSTS650052: the admin's tenant has no service principal for a resource the request
    covers (the service is not provisioned there), so Entra grants nothing and reports it
    to the app. Redirect shape: the v2 endpoint's documented error response; the `error`
    value and the wording are what Entra's redirects have been seen to carry."""
    error = errors.service_principal_missing(
        resource.app_ids[0] if resource.app_ids else resource.uri,
        resource.display_name,
        tenant.id,
    )
    params = {"error": error.error, "error_description": error.body(now)["error_description"]}
    if version == 2:
        params = {"admin_consent": "True", "tenant": tenant.id, **params, "state": state_param}
    return redirect(_with_query(redirect_uri, params))


def _consent_page(
    state: SandboxState,
    app: Application,
    asked: _Request,
    target: Tenant | str,
    users: list[User],
    status: int = 200,
    problem: str | None = None,
) -> Response:
    publisher = state.directory.tenants.get(app.tenant)
    body = Markup(
        "{problem}<p><strong id='app-name'>{name}</strong><br>"
        "<span class='muted' id='publisher'>Published by {publisher} ({domain})</span></p>"
        "<p>This app would like to:</p>{permissions}"
        "<p class='muted'>Accepting grants these permissions on behalf of your entire "
        "organization{org}. Only an administrator can accept.</p>"
        "<form method='post' id='consent-form'>{select}"
        "<button type='submit' name='action' value='accept' id='accept'>Accept</button>"
        "<button type='submit' name='action' value='cancel' id='cancel' formnovalidate>"
        "Cancel</button>"
        "</form>"
    ).format(
        problem=Markup("<p class='error' role='alert'>{}</p>").format(problem) if problem else "",
        name=app.name,
        publisher=publisher.name if publisher else "unknown",
        domain=publisher.domain if publisher else app.tenant,
        permissions=_requested_permissions(asked, target),
        org=Markup(" (<span id='organization'>{}</span>)").format(target.name)
        if isinstance(target, Tenant)
        else "",
        select=_user_select(users),
    )
    return _page("Permissions requested", body, status=status)


def _need_admin(app: Application, user: User, now: int) -> Response:
    error = EntraError(90094, "invalid_grant", "The grant requires admin permission.")
    return _page(
        "Need admin approval",
        Markup(
            "<div class='error' role='alert'><p>{name} needs permission to access resources in "
            "your organization that only an admin can grant. {upn} is not an administrator.</p>"
            "<p class='muted'>Error code: <code id='error-code'>AADSTS{code}</code></p></div>"
            "<form method='post'><input type='hidden' name='user' value='{upn}'>"
            "<button type='submit' name='action' value='decline' id='decline'>"
            "Return to the application without granting consent</button></form>"
        ).format(name=app.name, upn=user.upn, code=error.code),
        status=403,
    )


def admin_consent_v2(state: SandboxState, request: Request, tenant: str) -> Response:
    return _admin_consent(state, request, tenant, version=2)


def admin_consent_v1(state: SandboxState, request: Request, tenant: str) -> Response:
    return _admin_consent(state, request, tenant, version=1)


# -- sign-in -----------------------------------------------------------------------------


def authorize(state: SandboxState, request: Request, tenant: str) -> Response:
    now = state.clock.now()
    args = request.args
    try:
        target = _page_tenant(state, tenant, aliases=("organizations", "common"))
        app = _application(state, args.get("client_id"), target)
        redirect_uri = _registered_redirect(state, app, args.get("redirect_uri"))
    except EntraError as exc:
        return _error_page(exc, now)
    state_param = args.get("state")
    response_mode = args.get("response_mode", "query")

    def reply(params: dict[str, str | None]) -> Response:
        params = {k: v for k, v in params.items() if v is not None}
        if response_mode == "form_post":
            return _form_post(redirect_uri, params)
        return redirect(_with_query(redirect_uri, params))

    def fail(error: EntraError) -> Response:
        return reply(
            {
                "error": error.error,
                "error_description": error.body(now)["error_description"],
                "state": state_param,
            }
        )

    if args.get("response_type") != "code":
        return fail(
            EntraError(
                700054,
                "unsupported_response_type",
                f"response_type '{args.get('response_type', '')}' is not enabled for the "
                "application.",
            )
        )
    if response_mode not in ("query", "form_post"):
        return fail(
            EntraError(900144, "invalid_request", f"Unsupported response_mode '{response_mode}'.")
        )
    challenge, method = args.get("code_challenge"), args.get("code_challenge_method")
    if (
        challenge
        and (method or "plain") not in ("S256", "plain")
        or (challenge and not _PKCE_CHALLENGE.match(challenge))
    ):
        return fail(
            EntraError(501491, "invalid_request", "Invalid size of Code_Challenge parameter.")
        )
    if args.get("prompt") == "none":
        # The sandbox keeps no browser session, so silent sign-in always needs interaction.
        return fail(
            EntraError(
                50058,
                "login_required",
                "A silent sign-in request was sent but no user is signed in.",
            )
        )
    users = _users_for(state, target)
    if request.method == "POST":
        found = _tenant_of_user(state, request.form.get("user", ""), users)
        if found is not None:
            user_tenant, user = found
            try:
                _check_audience(app, user_tenant)
                if not user.enabled:
                    raise errors.user_disabled()
            except EntraError as exc:
                return _error_page(exc, now)
            code = secrets.token_urlsafe(48)
            with state.codes_lock:
                state.codes[code] = AuthorizationCode(
                    client_id=app.client_id,
                    redirect_uri=redirect_uri,
                    tenant_id=user_tenant.id,
                    user_upn=user.upn,
                    scope=args.get("scope", "openid"),
                    nonce=args.get("nonce"),
                    code_challenge=challenge,
                    code_challenge_method=method,
                    expires_at=now + state.setting("auth_code_lifetime"),
                    issued_at=now,
                )
            return reply({"code": code, "state": state_param, "session_state": str(uuid.uuid4())})
    body = Markup(
        "<p>to continue to <strong id='app-name'>{name}</strong></p>"
        "<form method='post' id='sign-in-form'>{select}"
        "<button type='submit' id='sign-in'>Sign in</button></form>"
    ).format(name=app.name, select=_user_select(users))
    return _page("Sign in", body, status=400 if request.method == "POST" else 200)


def logout(state: SandboxState, request: Request, tenant: str) -> Response:
    target = request.args.get("post_logout_redirect_uri")
    with state.directory.lock:
        registered = {u for a in state.directory.applications.values() for u in a.redirect_uris}
    if target and target in registered:
        return redirect(target)
    return _page(
        "You signed out of your account",
        Markup("<p>It's a good idea to close all browser windows.</p>"),
    )


def routes() -> list[Route]:
    return [
        Route("/<tenant>/v2.0/adminconsent", "consent", admin_consent_v2, tenant_from_path),
        Route("/<tenant>/adminconsent", "consent", admin_consent_v1, tenant_from_path),
        Route("/<tenant>/oauth2/v2.0/authorize", "authorize", authorize, tenant_from_path),
        Route("/<tenant>/oauth2/v2.0/logout", "authorize", logout, tenant_from_path),
    ]
