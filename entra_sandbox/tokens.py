"""Token minting and validation: managed identity tokens, app-only access tokens,
id tokens, and the clock the security token service (STS) runs on."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt

from .catalog import TOKEN_EXCHANGE_APP_ID, TOKEN_EXCHANGE_AUDIENCE, Resource
from .directory import Application, ManagedIdentity, ServicePrincipal, Tenant, User
from .keys import SigningKey, b64url, parse_jwt

# Microsoft.IdentityModel's default clock skew; Entra tolerates about the same on assertions.
CLOCK_LEEWAY = 300
# Entra's documented limit of the `groups` claim in a JWT; above it, the overage form.
GROUPS_CLAIM_LIMIT = 200


class Clock:
    """The STS clock: real time plus a skew the control API sets. The managed identity
    endpoint runs on the workload's host and keeps real time, which is what makes a
    skewed STS reject a fresh assertion (AADSTS700024)."""

    def __init__(self) -> None:
        self.skew_seconds = 0

    def now(self) -> int:
        return int(time.time()) + self.skew_seconds


# The tenant a fault makes the current request's tokens name (see faults.Fault.tid).
_NAMED_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "entra_sandbox_named_tenant", default=None
)


def _uti() -> str:
    return b64url(uuid.uuid4().bytes)


class TokenIssuer:
    def __init__(self, key: SigningKey, clock: Clock, authority: Callable[[], str]) -> None:
        self.key = key
        self.clock = clock
        self._authority = authority
        self._issued: list[str] = []
        self._lock = threading.Lock()

    @property
    def authority(self) -> str:
        return self._authority()

    def v1_issuer(self, tenant_id: str) -> str:
        # Plays https://sts.windows.net/{tid}/ for v1 access tokens.
        return f"{self.authority}/{tenant_id}/"

    def v2_issuer(self, tenant_id: str) -> str:
        # Plays https://login.microsoftonline.com/{tid}/v2.0.
        return f"{self.authority}/{tenant_id}/v2.0"

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    @contextlib.contextmanager
    def naming_tenant(self, tid: str | None) -> Iterator[None]:
        """Tokens signed in this block name `tid` instead of their tenant (`tid`, and the
        tenant in `iss` and `idp`): the wrong-tenant fault. None: no change."""
        reset = _NAMED_TENANT.set(tid)
        try:
            yield
        finally:
            _NAMED_TENANT.reset(reset)

    def _sign(self, claims: dict[str, Any]) -> str:
        named = _NAMED_TENANT.get()
        if named and claims.get("tid") and claims["tid"] != named:
            real = claims["tid"]
            for name in ("iss", "idp"):
                if name in claims:
                    claims[name] = str(claims[name]).replace(f"/{real}/", f"/{named}/")
            claims["tid"] = named
        return self.record(self.key.sign(claims))

    def record(self, token: str) -> str:
        """Log an issued token (JWT or opaque refresh token) for `issued()`."""
        with self._lock:
            self._issued.append(token)
        return token

    # -- minting -------------------------------------------------------------------------

    def managed_identity_token(
        self, mi: ManagedIdentity, resource: str, lifetime: int
    ) -> tuple[str, int]:
        """A managed identity token, on real time (see Clock). Returns (token, exp)."""
        now = int(time.time())
        exp = now + lifetime
        common = {
            "iat": now,
            "nbf": now,
            "exp": exp,
            "tid": mi.tenant,
            "oid": mi.object_id,
            "sub": mi.object_id,
            "idtyp": "app",
            "uti": _uti(),
            "xms_mirid": mi.resource_id,
        }
        if resource.rstrip("/").lower() == TOKEN_EXCHANGE_AUDIENCE.lower():
            claims = {
                "aud": TOKEN_EXCHANGE_APP_ID,
                "iss": self.v2_issuer(mi.tenant),
                "azp": mi.client_id,
                "azpacr": "2",
                "ver": "2.0",
                **common,
            }
        else:
            claims = {
                # Exactly as requested: `https://management.azure.com/` keeps its slash.
                "aud": resource,
                "iss": self.v1_issuer(mi.tenant),
                "appid": mi.client_id,
                "appidacr": "2",
                "ver": "1.0",
                **common,
            }
        return self._sign(claims), exp

    def app_token(
        self,
        tenant: Tenant,
        app: Application,
        sp: ServicePrincipal,
        audience: str,
        resource: Resource,
        lifetime: int,
    ) -> str:
        """A v1 app-only access token for `resource` in `tenant`."""
        now = self.clock.now()
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.v1_issuer(tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "appidacr": "2",
            "idp": self.v1_issuer(tenant.id),
            "idtyp": "app",
            "oid": sp.object_id,
            "sub": sp.object_id,
            "tid": tenant.id,
            "uti": _uti(),
            "ver": "1.0",
        }
        roles = sp.roles.get(resource.key, []) if resource.uses_app_roles else []
        if roles:
            claims["roles"] = sorted(roles)
        return self._sign(claims)

    def user_access_token(
        self, tenant: Tenant, app: Application, user: User, audience: str, scp: str, lifetime: int
    ) -> str:
        """A delegated (v1) access token for the signed-in user."""
        now = self.clock.now()
        return self._sign(
            {
                "aud": audience,
                "iss": self.v1_issuer(tenant.id),
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
                "appid": app.client_id,
                "appidacr": "2",
                "idtyp": "user",
                "name": user.display_name,
                "oid": user.object_id,
                "sub": user.object_id,
                "scp": scp,
                "tid": tenant.id,
                "unique_name": user.upn,
                "upn": user.upn,
                "uti": _uti(),
                "ver": "1.0",
            }
        )

    def id_token(
        self, tenant: Tenant, app: Application, user: User, nonce: str | None, lifetime: int
    ) -> str:
        now = self.clock.now()
        claims: dict[str, Any] = {
            "aud": app.client_id,
            "iss": self.v2_issuer(tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "name": user.display_name,
            "oid": user.object_id,
            "preferred_username": user.upn,
            # Entra's sub is pairwise per application.
            "sub": b64url(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{app.client_id}:{user.object_id}").bytes
            ),
            "tid": tenant.id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        roles = user.roles_for(app.client_id)
        if roles:
            claims["roles"] = roles
        claims.update(self._group_claims(app, user))
        return self._sign(claims)

    def _group_claims(self, app: Application, user: User) -> dict[str, Any]:
        """`groups` (object ids) when the app registration asks for them
        (groupMembershipClaims), or Entra's overage form above the JWT limit: a distributed
        claim pointing at Graph's getMemberObjects for the user. (`hasgroups` is Entra's
        form for the implicit flow only, which the sandbox does not serve.)"""
        if app.group_membership_claims == "None" or not user.groups:
            return {}
        if len(user.groups) <= GROUPS_CLAIM_LIMIT:
            return {"groups": list(user.groups)}
        endpoint = f"{self.authority}/resources/graph/v1.0/users/{user.object_id}/getMemberObjects"
        return {
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": endpoint}},
        }

    # -- validation ----------------------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token signed by the sandbox (raises jwt.InvalidTokenError)."""
        return self.key.verify(token)

    def time_error(self, claims: dict[str, Any]) -> str | None:
        """Why the claims are outside their validity window on the STS clock, or None."""
        now = self.clock.now()
        try:
            exp, nbf = int(claims["exp"]), int(claims.get("nbf", claims.get("iat", 0)))
        except (KeyError, TypeError, ValueError):
            return "missing exp"
        if now > exp + CLOCK_LEEWAY:
            return "expired"
        if now + CLOCK_LEEWAY < nbf:
            return "not yet valid"
        return None


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT without checking it (for routing faults/counters only)."""
    try:
        return parse_jwt(token)[1]
    except jwt.InvalidTokenError:
        return {}
