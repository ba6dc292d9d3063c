"""The security token service: OIDC discovery, JWKS, instance discovery and the token
endpoint (client credentials with a federated assertion; authorization code + PKCE; refresh
token)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt
from werkzeug.wrappers import Request, Response

from . import errors
from .catalog import TOKEN_EXCHANGE_APP_ID, TOKEN_EXCHANGE_AUDIENCE, resource_for_identifier
from .directory import TENANT_ALIASES, Application, Tenant, User
from .errors import json_response
from .keys import b64url, parse_jwt
from .routing import FAULT_TID, Route, read_form, tenant_from_path
from .state import RefreshGrant, SandboxState

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}
# Graph's app id: the audience of delegated tokens when only OIDC scopes are asked for.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$")
_EXCHANGE_AUDIENCES = {TOKEN_EXCHANGE_AUDIENCE.lower(), TOKEN_EXCHANGE_APP_ID}


def resolve_tenant(state: SandboxState, ref: str, *, aliases: bool = False) -> Tenant | str:
    """The tenant a path names. With `aliases`, `organizations`/`common` come back as
    strings. Raises AADSTS90002 for unknown tenants, 900023 for nonsense."""
    value = (ref or "").strip().lower()
    if value in TENANT_ALIASES[:2] and aliases:
        return value
    tenant = state.directory.tenant(value)
    if tenant is not None:
        return tenant
    try:
        uuid.UUID(value)
    except ValueError:
        if not _DNS_NAME.match(value) and value not in TENANT_ALIASES:
            raise errors.malformed_tenant(ref) from None
    raise errors.invalid_tenant(ref)


# -- discovery ---------------------------------------------------------------------------


def openid_configuration(state: SandboxState, request: Request, tenant: str) -> Response:
    target = resolve_tenant(state, tenant, aliases=True)
    authority, login = state.authority, state.login_url
    if isinstance(target, Tenant):
        path_tenant, issuer = target.id, state.tokens.v2_issuer(target.id)
    else:
        # Entra publishes a templated issuer for the multi-tenant endpoints.
        path_tenant, issuer = target, f"{authority}/{{tenantid}}/v2.0"
    return json_response(
        {
            "token_endpoint": f"{authority}/{path_tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{authority}/{path_tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{state.resource_urls['graph']}/oidc/userinfo",
            "authorization_endpoint": f"{login}/{path_tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{authority}/{path_tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{login}/{path_tenant}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],  # fmt: skip
            "kerberos_endpoint": f"{authority}/{path_tenant}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    )


def openid_configuration_v1(state: SandboxState, request: Request, tenant: str) -> Response:
    """The v1 metadata document: the issuer of v1 tokens (``https://sts.windows.net/{tid}/``,
    played by ``{authority}/{tid}/``) and the shared keys. It names Entra's v1 endpoints
    too; the sandbox serves only its keys (no v1 token or authorize endpoint)."""
    target = resolve_tenant(state, tenant, aliases=True)
    authority = state.authority
    if isinstance(target, Tenant):
        path_tenant, issuer = target.id, state.tokens.v1_issuer(target.id)
    else:
        path_tenant, issuer = target, f"{authority}/{{tenantid}}/"
    base = f"{authority}/{path_tenant}"
    return json_response(
        {
            "token_endpoint": f"{base}/oauth2/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{authority}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": [
                "code",
                "id_token",
                "code id_token",
                "token id_token",
                "token",
            ],
            "scopes_supported": ["openid"],
            "issuer": issuer,
            "microsoft_multi_refresh_token": True,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "amr",
                "nonce",
                "email",
                "given_name",
                "family_name",
                "nickname",
            ],  # fmt: skip
            "check_session_iframe": f"{base}/oauth2/checksession",
            "userinfo_endpoint": f"{base}/openid/userinfo",
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    )


def instance_discovery(state: SandboxState, request: Request) -> Response:
    """`/common/discovery/instance`: api-version 1.0 needs `tenant_discovery_endpoint`,
    1.1 (alias lookup) needs `metadata`; both shapes are always returned."""
    host = urlsplit(state.authority).netloc
    tenant = "common"
    endpoint = request.args.get("authorization_endpoint", "")
    if endpoint:
        parts = urlsplit(endpoint).path.strip("/").split("/")
        tenant = parts[0] if parts and parts[0] else "common"
    return json_response(
        {
            "tenant_discovery_endpoint": (
                f"{state.authority}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": request.args.get("api-version", "1.1"),
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


def jwks(state: SandboxState, request: Request, tenant: str = "common") -> Response:
    target = resolve_tenant(state, tenant, aliases=True)
    issuer = (
        state.tokens.v2_issuer(target.id)
        if isinstance(target, Tenant)
        else f"{state.authority}/{{tenantid}}/v2.0"
    )
    return json_response({"keys": [state.key.jwk(issuer)]})


# -- token endpoint ----------------------------------------------------------------------


def token(state: SandboxState, request: Request, tenant: str) -> Response:
    if request.method != "POST":
        raise errors.post_only(request.method)
    form = read_form(request)
    target = resolve_tenant(state, tenant, aliases=True)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise errors.missing_parameter("grant_type")
    grants = {
        "client_credentials": _client_credentials,
        "authorization_code": _authorization_code,
        "refresh_token": _refresh_token,
    }
    if grant_type not in grants:
        raise errors.unsupported_grant_type(grant_type)
    with state.tokens.naming_tenant(request.environ.get(FAULT_TID)):
        return grants[grant_type](state, form, target)


def _client_credentials(
    state: SandboxState, form: dict[str, str], target: Tenant | str
) -> Response:
    for name in ("client_id", "scope"):
        if not form.get(name):
            raise errors.missing_parameter(name)
    if not isinstance(target, Tenant):
        # App-only tokens are always for one tenant.
        raise errors.no_tenant_information()
    directory = state.directory
    app = _authenticate_client(state, form, target)
    with directory.lock:
        sp = target.service_principals.get(app.client_id)
        if sp is None or directory.propagating(target, sp, state.clock.now()):
            raise errors.application_not_found(app.client_id, target.name)
        if not sp.enabled or not app.enabled:
            raise errors.application_disabled(app.client_id, app.name)
        scope = form["scope"].strip()
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            raise errors.invalid_scope(scope)
        identifier = scope[: -len("/.default")].rstrip("/")
        resource = resource_for_identifier(identifier)
        if resource is None or resource.key not in target.services:
            raise errors.resource_not_found(identifier, target.id)
        lifetime = state.setting("access_token_lifetime")
        access_token = state.tokens.app_token(target, app, sp, identifier, resource, lifetime)
    return json_response(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
    )


def _authenticate_client(
    state: SandboxState, form: dict[str, str], target: Tenant | str
) -> Application:
    """Client authentication with a federated assertion (the managed identity token)."""
    client_id = form["client_id"].strip()
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    directory_name = target.name if isinstance(target, Tenant) else target
    if not assertion and not assertion_type:
        if form.get("client_secret"):
            # Sandbox apps have no secrets: whatever is sent is wrong.
            raise errors.client_secret_not_supported(client_id)
        raise errors.missing_client_credential()
    if assertion_type != JWT_BEARER:
        if not assertion_type:
            raise errors.missing_parameter("client_assertion_type")
        raise errors.unexpected_assertion_type()
    if not assertion:
        raise errors.missing_client_credential()
    try:
        parse_jwt(assertion)
    except jwt.InvalidTokenError:
        raise errors.malformed_assertion() from None

    app = state.directory.application(client_id)
    if app is None:
        raise errors.application_not_found(client_id, directory_name)
    try:
        claims = state.tokens.verify(assertion)
    except jwt.InvalidTokenError:
        raise errors.assertion_signature_invalid() from None
    if state.tokens.time_error(claims):
        raise errors.assertion_time_range(
            _fmt_time(state.clock.now()),
            _fmt_time(claims.get("nbf", claims.get("iat"))),
            _fmt_time(claims.get("exp")),
        )
    issuer = str(claims.get("iss", ""))
    issuer_tenant = str(claims.get("tid", "")).lower()
    if issuer_tenant != app.tenant:
        raise errors.cross_tenant_assertion(issuer)
    _match_federated_credential(state, app, claims)
    return app


def _fmt_time(value: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "(none)"


def _audience_matches(token_audiences: list[str], fic_audiences: list[str]) -> bool:
    wanted = set(fic_audiences)
    for aud in token_audiences:
        if aud in wanted:
            return True
        # The token exchange app id and its URI name the same audience.
        if aud.lower() in _EXCHANGE_AUDIENCES and any(
            a.lower() in _EXCHANGE_AUDIENCES for a in wanted
        ):
            return True
    return False


def _match_federated_credential(
    state: SandboxState, app: Application, claims: dict[str, Any]
) -> None:
    """Find a FIC matching issuer, subject and audience exactly; otherwise report the
    mismatch of the closest one the way Entra does."""
    with state.directory.lock:
        fics = list(app.federated_credentials)
    if not fics:
        raise errors.no_federated_credentials()
    issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
    aud = claims.get("aud", "")
    audiences = [str(a) for a in aud] if isinstance(aud, list) else [str(aud)]
    best: list[str] | None = None
    for fic in fics:
        mismatched = []
        if fic.issuer.replace("{authority}", state.authority) != issuer:
            mismatched.append("issuer")
        if fic.subject != subject:
            mismatched.append("subject")
        if not _audience_matches(audiences, fic.audiences):
            mismatched.append("audience")
        if not mismatched:
            return
        if best is None or len(mismatched) < len(best):
            best = mismatched
    assert best is not None
    if best == ["issuer"]:
        raise errors.fic_issuer_mismatch(issuer)
    if best == ["subject"]:
        raise errors.fic_subject_mismatch(subject)
    if best == ["audience"]:
        raise errors.fic_audience_mismatch(audiences[0] if audiences else "")
    raise errors.fic_no_match(issuer, subject, ", ".join(audiences))


def _authorization_code(
    state: SandboxState, form: dict[str, str], target: Tenant | str
) -> Response:
    for name in ("client_id", "code", "redirect_uri"):
        if not form.get(name):
            raise errors.missing_parameter(name)
    app = _authenticate_client(state, form, target)
    now = state.clock.now()
    with state.codes_lock:
        grant = state.codes.get(form["code"])
        if grant is None:
            raise errors.invalid_grant_code(
                "The provided value for the 'code' parameter is not valid."
            )
        if grant.redeemed:
            raise errors.code_redeemed()
        # Whatever happens next, a presented code is spent (it may have been intercepted).
        grant.redeemed = True
    if now > grant.expires_at:
        raise errors.code_expired()
    if grant.client_id != app.client_id:
        raise errors.invalid_grant_code(
            "The provided value for the 'code' parameter is not valid. The code was issued to "
            "a different client."
        )
    if grant.redirect_uri != form["redirect_uri"]:
        raise errors.invalid_grant_code(
            "The provided value for the 'redirect_uri' is not valid. The value must exactly "
            "match the redirect URI used to obtain the authorization code."
        )
    if isinstance(target, Tenant) and target.id != grant.tenant_id:
        raise errors.invalid_grant_code(
            "The provided value for the 'code' parameter is not valid. The code was issued for "
            "a different tenant."
        )
    if grant.code_challenge and not _pkce_ok(
        grant.code_challenge, grant.code_challenge_method, form.get("code_verifier", "")
    ):
        raise errors.pkce_mismatch()

    with state.directory.lock:
        tenant = state.directory.tenants.get(grant.tenant_id)
        user = tenant.user(grant.user_upn) if tenant else None
        if tenant is None or user is None:
            raise errors.invalid_grant_code("The user of this authorization code no longer exists.")
        if not user.enabled:
            raise errors.user_disabled()
        return _user_tokens(
            state, form, app, tenant, user, grant.scope, grant.nonce, grant.issued_at
        )


def _user_tokens(
    state: SandboxState,
    form: dict[str, str],
    app: Application,
    tenant: Tenant,
    user: User,
    scope: str,
    nonce: str | None,
    auth_time: int,
    id_token: bool = True,
) -> Response:
    """The token response of a user grant: a delegated access token, the id token, and a
    refresh token when `offline_access` was asked for (msal always asks)."""
    audience, scp = _delegated_audience(app, scope)
    lifetime = state.setting("access_token_lifetime")
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(sorted(set(scope.split()) - {"offline_access"})),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": state.tokens.user_access_token(tenant, app, user, audience, scp, lifetime),
    }
    if id_token:
        body["id_token"] = state.tokens.id_token(
            tenant, app, user, nonce, state.setting("id_token_lifetime")
        )
    if "offline_access" in scope.split():
        refresh_token = state.tokens.record(secrets.token_urlsafe(96))
        with state.codes_lock:
            state.refresh_tokens[refresh_token] = RefreshGrant(
                client_id=app.client_id,
                tenant_id=tenant.id,
                user_object_id=user.object_id,
                scope=scope,
                auth_time=auth_time,
                expires_at=state.clock.now() + state.setting("refresh_token_lifetime"),
            )
        body["refresh_token"] = refresh_token
    if form.get("client_info") == "1":
        info = json.dumps({"uid": user.object_id, "utid": tenant.id}).encode()
        body["client_info"] = b64url(info)
    return json_response(body)


def _refresh_token(state: SandboxState, form: dict[str, str], target: Tenant | str) -> Response:
    """grant_type=refresh_token. The presented token stays valid (Entra does not revoke a
    refresh token when it is used); the answer carries a new one."""
    for name in ("client_id", "refresh_token"):
        if not form.get(name):
            raise errors.missing_parameter(name)
    app = _authenticate_client(state, form, target)
    now = state.clock.now()
    with state.codes_lock:
        grant = state.refresh_tokens.get(form["refresh_token"])
    if grant is None:
        raise errors.refresh_token_malformed()
    if grant.client_id != app.client_id:
        raise errors.invalid_grant_code(
            "The provided value for the 'refresh_token' parameter is not valid. The refresh "
            "token was issued to a different client."
        )
    if isinstance(target, Tenant) and target.id != grant.tenant_id:
        raise errors.invalid_grant_code(
            "The provided value for the 'refresh_token' parameter is not valid. The refresh "
            "token was issued for a different tenant."
        )
    if now > grant.expires_at:
        idle = grant.expires_at - state.setting("refresh_token_lifetime")
        raise errors.refresh_token_expired(_fmt_time(grant.auth_time), (now - idle) // 86400)
    with state.directory.lock:
        tenant = state.directory.tenants.get(grant.tenant_id)
        if tenant is None:
            raise errors.invalid_tenant(grant.tenant_id)
        user = next((u for u in tenant.users if u.object_id == grant.user_object_id), None)
        if user is None:
            raise errors.user_not_found(tenant.id)
        if not user.enabled:
            raise errors.user_disabled()
        if grant.auth_time < user.tokens_valid_from:
            raise errors.refresh_token_revoked(
                _fmt_time(grant.auth_time), _fmt_time(user.tokens_valid_from)
            )
        scope = form.get("scope") or grant.scope
        # Entra answers a refresh with an id token when openid is among the scopes.
        return _user_tokens(
            state,
            form,
            app,
            tenant,
            user,
            scope,
            None,
            grant.auth_time,
            id_token="openid" in scope.split(),
        )


def _pkce_ok(challenge: str, method: str | None, verifier: str) -> bool:
    if not verifier:
        return False
    if (method or "plain").upper() == "S256":
        computed = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        )
        return hmac.compare_digest(computed.rstrip(b"=").decode(), challenge)
    return hmac.compare_digest(verifier, challenge)


def _delegated_audience(app: Application, scope: str) -> tuple[str, str]:
    """Audience and `scp` of a delegated token for the requested scopes. Only OIDC scopes
    give a Graph token (as Entra does, with User.Read)."""
    scopes = scope.split()
    for s in scopes:
        if s in OIDC_SCOPES or "/" not in s:
            continue
        identifier, _, permission = s.rpartition("/")
        if identifier.lower() in (app.client_id, f"api://{app.client_id}"):
            return app.client_id, permission
        resource = resource_for_identifier(identifier)
        if resource is not None:
            names = [x.rpartition("/")[2] for x in scopes if x.startswith(identifier + "/")]
            return resource.uri, " ".join(n for n in names if n != ".default") or "User.Read"
    plain = [s for s in scopes if s not in {"offline_access"}]
    return GRAPH_APP_ID, " ".join(sorted({*plain, "User.Read"}))


def routes() -> list[Route]:
    no_tenant = lambda state, request, args: None  # noqa: E731 - tiny routing hint
    return [
        Route("/<tenant>/v2.0/.well-known/openid-configuration", "discovery", openid_configuration),
        Route("/<tenant>/.well-known/openid-configuration", "discovery", openid_configuration_v1),
        Route("/common/discovery/instance", "discovery", instance_discovery, no_tenant),
        Route("/common/discovery/keys", "jwks", jwks, no_tenant),
        Route("/common/discovery/v2.0/keys", "jwks", jwks, no_tenant),
        Route("/<tenant>/discovery/v2.0/keys", "jwks", jwks, tenant_from_path),
        Route("/<tenant>/discovery/keys", "jwks", jwks, tenant_from_path),
        Route("/<tenant>/oauth2/v2.0/token", "token", token),
    ]
