"""The sandbox directory: tenants, users, managed identities, app registrations and
service principals, loaded from a scenario and changed at run time.

Every read that must see a consistent directory and every change hold ``Directory.lock``
(the listeners are threaded and the control API changes the directory concurrently).
After every change, still under the lock, ``Directory.on_change`` is called (the state dir
saves the directory there).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import RESOURCES

DEFAULT_SETTINGS: dict[str, int] = {
    # Real managed identity tokens live about 24 hours.
    "mi_token_lifetime": 86399,
    "access_token_lifetime": 3599,
    "id_token_lifetime": 3600,
    "auth_code_lifetime": 600,
    # Entra's refresh tokens expire after 90 days without use (web apps).
    "refresh_token_lifetime": 90 * 24 * 3600,
    # How long after an admin consent app-only tokens in that tenant still fail with
    # AADSTS700016, as while Entra propagates a new service principal. 0: at once.
    "consent_propagation_seconds": 0,
}
# Settings that may be 0; the others must be positive.
_ZERO_ALLOWED = {"consent_propagation_seconds"}

# The application manifest's groupMembershipClaims values the sandbox models: which groups
# a sign-in's id token names (all sandbox groups are security groups).
GROUP_CLAIMS = ("None", "SecurityGroup", "All")

# Entra leaves the error-lookup page for `organizations`/`common`, so they are never tenants.
TENANT_ALIASES = ("organizations", "common", "consumers")


class ScenarioError(ValueError):
    """The scenario is not valid; the message says where."""


@dataclass
class User:
    upn: str
    object_id: str
    display_name: str
    admin: bool = False
    # "<app client id>/<RoleName>" entries, for staff sign-in id tokens.
    app_roles: list[str] = field(default_factory=list)
    # Graph's accountEnabled: a disabled user cannot sign in or refresh tokens.
    enabled: bool = True
    # Graph's signInSessionsValidFromDateTime (STS clock, epoch seconds): refresh tokens of
    # sign-ins before it are revoked.
    tokens_valid_from: int = 0
    # Object ids of the (security) groups the user is a member of, nested ones included:
    # what the `groups` claim and Graph's membership checks report.
    groups: list[str] = field(default_factory=list)

    def roles_for(self, client_id: str) -> list[str]:
        prefix = client_id.lower() + "/"
        return [r.split("/", 1)[1] for r in self.app_roles if r.lower().startswith(prefix)]


@dataclass
class Group:
    id: str
    name: str


@dataclass
class Subscription:
    id: str
    name: str
    # "<app client id>/<RBAC role name>" entries.
    roles: list[str] = field(default_factory=list)

    def roles_for(self, client_id: str) -> list[str]:
        prefix = client_id.lower() + "/"
        return [r.split("/", 1)[1] for r in self.roles if r.lower().startswith(prefix)]


@dataclass
class ServicePrincipal:
    application: str
    object_id: str
    enabled: bool = True
    # resource key -> granted application permission (app role) names
    roles: dict[str, list[str]] = field(default_factory=dict)
    # When an admin consent created it (STS clock); None for service principals of the
    # scenario or the control API, which exist at once. See Directory.propagating.
    consented_at: int | None = None


@dataclass
class Tenant:
    id: str
    name: str
    domain: str
    services: list[str]
    users: list[User] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    service_principals: dict[str, ServicePrincipal] = field(default_factory=dict)
    # Overrides the directory's consent_propagation_seconds for this tenant.
    consent_propagation_seconds: int | None = None
    groups: dict[str, Group] = field(default_factory=dict)

    def add_groups(self, ids: list[str]) -> None:
        """Make sure these groups exist; one not declared is named by its id."""
        for gid in ids:
            self.groups.setdefault(gid, Group(gid, gid))

    @property
    def initial_domain(self) -> str:
        label = "".join(c for c in self.domain.split(".")[0] if c.isalnum()).lower()
        return f"{label or 'tenant'}.onmicrosoft.com"

    def user(self, upn: str) -> User | None:
        return next((u for u in self.users if u.upn.lower() == upn.lower()), None)


@dataclass
class ManagedIdentity:
    tenant: str
    name: str
    client_id: str
    object_id: str
    resource_id: str


@dataclass
class FederatedCredential:
    name: str
    issuer: str  # may contain "{authority}"
    subject: str
    audiences: list[str]


@dataclass
class Application:
    tenant: str
    client_id: str
    name: str
    multi_tenant: bool = False
    redirect_uris: list[str] = field(default_factory=list)
    permissions: dict[str, list[str]] = field(default_factory=dict)
    app_roles: list[str] = field(default_factory=list)
    enabled: bool = True
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    group_membership_claims: str = "None"  # one of GROUP_CLAIMS


def _guid(value: Any, where: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ScenarioError(f"{where}: {value!r} is not a GUID") from None


def _sp_object_id(tenant_id: str, client_id: str) -> str:
    # Deterministic, so the same scenario gives the same ids run after run (demo screenshots,
    # docs), yet distinct per tenant like real service principals.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client_id}"))


class Directory:
    """The live directory. Public methods lock; callers needing several reads to agree
    wrap them in ``with directory.lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.managed_identities: list[ManagedIdentity] = []
        self.applications: dict[str, Application] = {}
        self.settings: dict[str, int] = dict(DEFAULT_SETTINGS)
        # Called with the directory after every change, while the lock is held.
        self.on_change: Callable[[Directory], None] | None = None

    # -- lookups -------------------------------------------------------------------------

    def tenant(self, ref: str) -> Tenant | None:
        """A tenant by GUID, verified domain or initial (onmicrosoft) domain."""
        ref = (ref or "").strip().lower()
        with self.lock:
            if ref in self.tenants:
                return self.tenants[ref]
            for tenant in self.tenants.values():
                if ref in (tenant.domain.lower(), tenant.initial_domain):
                    return tenant
        return None

    def application(self, client_id: str) -> Application | None:
        with self.lock:
            return self.applications.get((client_id or "").strip().lower())

    def managed_identity(
        self,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
    ) -> ManagedIdentity | None:
        with self.lock:
            for mi in self.managed_identities:
                if client_id and mi.client_id == client_id.strip().lower():
                    return mi
                if object_id and mi.object_id == object_id.strip().lower():
                    return mi
                # ARM resource ids are case-insensitive.
                if resource_id and mi.resource_id.lower() == resource_id.strip().lower():
                    return mi
        return None

    def find_user(self, ref: str) -> tuple[Tenant, User]:
        """A user of any tenant by object id or UPN. Raises KeyError when there is none."""
        ref = (ref or "").strip().lower()
        with self.lock:
            for tenant in self.tenants.values():
                for user in tenant.users:
                    if ref in (user.object_id, user.upn.lower()):
                        return tenant, user
        raise KeyError(ref)

    def service_principal(self, tenant_id: str, client_id: str) -> ServicePrincipal | None:
        with self.lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                return None
            return tenant.service_principals.get(client_id.lower())

    # -- changes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """Hold the lock for a change, then call ``on_change`` before releasing it: saves
        then happen in the order of the changes and never see half of one. Also after a
        change that failed half-way, so a save matches what the directory now holds."""
        with self.lock:
            try:
                yield
            finally:
                if self.on_change is not None:
                    self.on_change(self)

    def replace(self, other: Directory) -> None:
        """Take over another directory's contents (what `reset` does), keeping this object:
        its lock, its ``on_change`` and the references the endpoints hold stay valid."""
        with self._change():
            self.tenants = other.tenants
            self.managed_identities = other.managed_identities
            self.applications = other.applications
            self.settings = other.settings

    def grant_admin_consent(
        self, tenant_id: str, client_id: str, now: int, roles: Mapping[str, list[str]]
    ) -> dict[str, list[str]]:
        """What an accepted tenant-wide admin consent does: create (or update) the app's
        service principal with the application permissions `roles` (by resource key; the
        caller has refused a consent for a resource the tenant lacks). Returns them. A
        service principal it creates propagates from `now` (STS clock) on."""
        with self._change():
            tenant = self.tenants[tenant_id]
            unprovisioned = set(roles) - set(tenant.services)
            if unprovisioned:
                raise ValueError(f"not provisioned in {tenant_id}: {sorted(unprovisioned)}")
            granted = {key: list(names) for key, names in roles.items() if names}
            sp = tenant.service_principals.get(client_id)
            if sp is None:
                sp = ServicePrincipal(client_id, _sp_object_id(tenant_id, client_id))
                sp.consented_at = now
                tenant.service_principals[client_id] = sp
            for key, names in granted.items():
                have = sp.roles.setdefault(key, [])
                have.extend(n for n in names if n not in have)
            return granted

    def propagation_seconds(self, tenant: Tenant) -> int:
        with self.lock:
            if tenant.consent_propagation_seconds is not None:
                return tenant.consent_propagation_seconds
            return self.settings["consent_propagation_seconds"]

    def propagating(self, tenant: Tenant, sp: ServicePrincipal, now: int) -> bool:
        """Whether a service principal an admin consent created is still unknown to the
        token endpoint (Entra takes seconds to a minute or more to propagate one). The
        delay is read now, so changing it applies to consents already given."""
        if sp.consented_at is None:
            return False
        return now < sp.consented_at + self.propagation_seconds(tenant)

    def set_consent_propagation(self, seconds: int | None, tenant_id: str | None = None) -> None:
        """The propagation delay for every tenant, or (with `tenant_id`) one tenant's
        override; `None` for a tenant removes its override."""
        if seconds is not None and (
            not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0
        ):
            raise ScenarioError("seconds: expected a non-negative integer")
        with self._change():
            if tenant_id is None:
                if seconds is None:
                    raise ScenarioError("seconds: required without a tenant")
                self.settings["consent_propagation_seconds"] = seconds
            else:
                self._require_tenant(tenant_id).consent_propagation_seconds = seconds

    def _target_apps(self, tenant: Tenant, application: str | None) -> list[str]:
        if application:
            return [application.lower()]
        # Default: every foreign application (the home app's own SP is never "revoked"
        # by a customer-side action).
        return [
            cid
            for cid in tenant.service_principals
            if cid not in self.applications or self.applications[cid].tenant != tenant.id
        ]

    def revoke(self, tenant_id: str, application: str | None = None) -> list[str]:
        with self._change():
            tenant = self._require_tenant(tenant_id)
            removed = []
            for cid in self._target_apps(tenant, application):
                if tenant.service_principals.pop(cid, None) is not None:
                    removed.append(cid)
            return removed

    def set_enabled(
        self, tenant_id: str, enabled: bool, application: str | None = None
    ) -> list[str]:
        with self._change():
            tenant = self._require_tenant(tenant_id)
            changed = []
            for cid in self._target_apps(tenant, application):
                sp = tenant.service_principals.get(cid)
                if sp is not None:
                    sp.enabled = enabled
                    changed.append(cid)
            return changed

    def set_roles(
        self, tenant_id: str, roles: Mapping[str, list[str]], application: str | None = None
    ) -> list[str]:
        for key in roles:
            if key not in RESOURCES:
                raise ScenarioError(f"roles: unknown resource {key!r}")
        with self._change():
            tenant = self._require_tenant(tenant_id)
            changed = []
            for cid in self._target_apps(tenant, application):
                sp = tenant.service_principals.get(cid)
                if sp is None and application:
                    # Setting roles for a named app creates its SP, like an assignment would.
                    if cid not in self.applications:
                        raise ScenarioError(f"unknown application {cid!r}")
                    sp = ServicePrincipal(cid, _sp_object_id(tenant.id, cid))
                    tenant.service_principals[cid] = sp
                if sp is not None:
                    sp.roles = {k: list(v) for k, v in roles.items()}
                    changed.append(cid)
            return changed

    def update_user(self, ref: str, fields: Mapping[str, Any]) -> User:
        """Change a user as an administrator would: `app_roles` ("<client id>/<role>"
        entries, replacing the user's), `groups` (group object ids, replacing the user's
        memberships; groups not in the tenant yet are created), `enabled`. Checked before
        anything changes."""
        allowed = {"app_roles", "groups", "enabled"}
        unknown = set(fields) - allowed
        if unknown:
            raise ScenarioError(f"cannot update user fields {sorted(unknown)}")
        with self._change():
            tenant, user = self.find_user(ref)
            where = f"users[{user.upn}]"
            groups = user.groups
            if "groups" in fields:
                groups = _group_refs(fields["groups"], f"{where}.groups")
            app_roles = user.app_roles
            if "app_roles" in fields:
                app_roles = _app_role_refs(
                    _str_list(fields["app_roles"], f"{where}.app_roles"),
                    f"{where}.app_roles",
                    set(self.applications),
                )
            enabled = user.enabled
            if "enabled" in fields:
                if not isinstance(fields["enabled"], bool):
                    raise ScenarioError(f"{where}.enabled: expected true or false")
                enabled = fields["enabled"]
            tenant.add_groups(groups)
            user.app_roles, user.enabled, user.groups = app_roles, enabled, groups
            return user

    def revoke_sessions(self, ref: str, now: int) -> User:
        """Graph's revokeSignInSessions: refresh tokens issued before `now` stop working."""
        with self._change():
            _, user = self.find_user(ref)
            user.tokens_valid_from = now
            return user

    def delete_tenant(self, tenant_id: str) -> None:
        with self._change():
            self.tenants.pop(self._require_tenant(tenant_id).id)

    def update_application(self, client_id: str, fields: Mapping[str, Any]) -> Application:
        allowed = {
            "redirect_uris",
            "permissions",
            "federated_credentials",
            "enabled",
            "name",
            "group_membership_claims",
            "app_roles",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ScenarioError(f"cannot update application fields {sorted(unknown)}")
        with self._change():
            app = self.applications.get(client_id.lower())
            if app is None:
                raise KeyError(client_id)
            where = f"applications[{client_id}]"
            if "redirect_uris" in fields:
                app.redirect_uris = [str(u) for u in fields["redirect_uris"]]
            if "permissions" in fields:
                app.permissions = _permissions(fields["permissions"], where)
            if "federated_credentials" in fields:
                app.federated_credentials = [
                    _federated_credential(f, f"{where}.federated_credentials[{i}]")
                    for i, f in enumerate(fields["federated_credentials"])
                ]
            if "enabled" in fields:
                app.enabled = bool(fields["enabled"])
            if "name" in fields:
                app.name = str(fields["name"])
            if "group_membership_claims" in fields:
                app.group_membership_claims = _group_claims(
                    fields["group_membership_claims"], where
                )
            if "app_roles" in fields:
                app.app_roles = _str_list(fields["app_roles"], f"{where}.app_roles")
            return app

    def _require_tenant(self, tenant_id: str) -> Tenant:
        tenant = self.tenant(tenant_id)
        if tenant is None:
            raise KeyError(tenant_id)
        return tenant

    # -- export --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "settings": dict(self.settings),
                "tenants": [
                    {
                        "id": t.id,
                        "name": t.name,
                        "domain": t.domain,
                        "initial_domain": t.initial_domain,
                        "services": list(t.services),
                        "users": [copy.deepcopy(vars(u)) for u in t.users],
                        "subscriptions": [copy.deepcopy(vars(s)) for s in t.subscriptions],
                        "service_principals": [
                            copy.deepcopy(vars(sp)) for sp in t.service_principals.values()
                        ],
                        "consent_propagation_seconds": t.consent_propagation_seconds,
                        "groups": [vars(g).copy() for g in t.groups.values()],
                    }
                    for t in self.tenants.values()
                ],
                "managed_identities": [vars(mi).copy() for mi in self.managed_identities],
                "applications": [
                    {
                        **{k: copy.deepcopy(v) for k, v in vars(a).items()},
                        "federated_credentials": [vars(f).copy() for f in a.federated_credentials],
                    }
                    for a in self.applications.values()
                ],
            }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Directory:
        """The directory ``to_json`` described, exactly (service principals keep their
        object ids). Raises KeyError, TypeError or ValueError on a document of another
        shape; the values themselves are trusted (the sandbox wrote them)."""
        directory = cls()
        # A setting added since the file was saved takes its default.
        directory.settings = {
            name: int(data["settings"].get(name, default))
            for name, default in DEFAULT_SETTINGS.items()
        }
        for raw in data["tenants"]:
            tenant = Tenant(
                id=raw["id"],
                name=raw["name"],
                domain=raw["domain"],
                services=list(raw["services"]),
                users=[User(**u) for u in raw["users"]],
                subscriptions=[Subscription(**s) for s in raw["subscriptions"]],
                consent_propagation_seconds=raw.get("consent_propagation_seconds"),
            )
            for group in raw.get("groups", []):
                tenant.groups[group["id"]] = Group(**group)
            for sp in (ServicePrincipal(**sp) for sp in raw["service_principals"]):
                tenant.service_principals[sp.application] = sp
            directory.tenants[tenant.id] = tenant
        directory.managed_identities = [ManagedIdentity(**mi) for mi in data["managed_identities"]]
        for raw in data["applications"]:
            credentials = [FederatedCredential(**f) for f in raw["federated_credentials"]]
            app = Application(**{**raw, "federated_credentials": credentials})
            directory.applications[app.client_id] = app
        return directory


# -- scenario loading -------------------------------------------------------------------


def read_scenario(scenario: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A scenario as a dict, from a dict, TOML text (contains a newline), or a path to a
    TOML (or JSON) file."""
    if isinstance(scenario, Mapping):
        return copy.deepcopy(dict(scenario))
    if isinstance(scenario, str) and "\n" in scenario:
        text, is_json = scenario, False
    else:
        path = Path(scenario)
        if not path.is_file():
            raise ScenarioError(f"scenario file {str(path)!r} not found")
        text, is_json = path.read_text(encoding="utf-8"), path.suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"scenario is not valid TOML/JSON: {exc}") from None


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{where}: expected a list of strings")
    return list(value)


def _permissions(value: Any, where: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}.permissions: expected a table resource -> [names]")
    out = {}
    for key, names in value.items():
        if key not in RESOURCES:
            raise ScenarioError(
                f"{where}: unknown resource {key!r} (known: {', '.join(RESOURCES)})"
            )
        out[key] = _str_list(names, f"{where}.{key}")
    return out


def _federated_credential(raw: Mapping[str, Any], where: str) -> FederatedCredential:
    for key in ("issuer", "subject"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ScenarioError(f"{where}: missing {key!r}")
    audiences = _str_list(raw.get("audiences", ["api://AzureADTokenExchange"]), where)
    return FederatedCredential(
        name=str(raw.get("name", "fic")),
        issuer=raw["issuer"],
        subject=raw["subject"],
        audiences=audiences,
    )


def _group_refs(value: Any, where: str) -> list[str]:
    ids = [_guid(v, where) for v in _str_list(value, where)]
    return list(dict.fromkeys(ids))  # a membership is listed once


def _group_claims(value: Any, where: str) -> str:
    if value not in GROUP_CLAIMS:
        raise ScenarioError(
            f"{where}.group_membership_claims: expected one of {', '.join(GROUP_CLAIMS)}"
        )
    return str(value)


def _app_role_refs(refs: list[str], where: str, known_apps: set[str]) -> list[str]:
    out = []
    for ref in refs:
        client_id, sep, role = ref.partition("/")
        if not sep or not role:
            raise ScenarioError(f"{where}: {ref!r} is not '<app client id>/<role>'")
        client_id = _guid(client_id, where)
        if client_id not in known_apps:
            raise ScenarioError(f"{where}: {ref!r} names an unknown application")
        out.append(f"{client_id}/{role}")
    return out


def load_directory(scenario: str | Path | Mapping[str, Any]) -> Directory:
    """Build a directory from a scenario; raises ScenarioError with a precise location."""
    data = read_scenario(scenario)
    directory = Directory()
    settings = data.get("settings", {}) or {}
    for key, value in settings.items():
        if key not in DEFAULT_SETTINGS:
            raise ScenarioError(f"settings: unknown setting {key!r}")
        least = 0 if key in _ZERO_ALLOWED else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            kind = "non-negative" if least == 0 else "positive"
            raise ScenarioError(f"settings.{key}: expected a {kind} integer")
        directory.settings[key] = value

    raw_apps = data.get("applications", []) or []
    known_apps = set()
    for i, raw in enumerate(raw_apps):
        known_apps.add(_guid(raw.get("client_id"), f"applications[{i}].client_id"))

    for i, raw in enumerate(data.get("tenants", []) or []):
        where = f"tenants[{i}]"
        tid = _guid(raw.get("id"), f"{where}.id")
        if tid in directory.tenants:
            raise ScenarioError(f"{where}: duplicate tenant id {tid}")
        domain = raw.get("domain")
        if not isinstance(domain, str) or "." not in domain:
            raise ScenarioError(f"{where}.domain: expected a DNS name")
        services = _str_list(raw.get("services", list(RESOURCES)), f"{where}.services")
        for s in services:
            if s not in RESOURCES:
                raise ScenarioError(f"{where}.services: unknown service {s!r}")
        tenant = Tenant(tid, str(raw.get("name", domain)), domain.lower(), services)
        for j, g in enumerate(raw.get("groups", []) or []):
            gw = f"{where}.groups[{j}]"
            gid = _guid(g.get("id"), f"{gw}.id")
            if gid in tenant.groups:
                raise ScenarioError(f"{gw}: duplicate group id {gid}")
            tenant.groups[gid] = Group(gid, str(g.get("name", gid)))
        if "consent_propagation_seconds" in raw:
            delay = raw["consent_propagation_seconds"]
            if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
                raise ScenarioError(
                    f"{where}.consent_propagation_seconds: expected a non-negative integer"
                )
            tenant.consent_propagation_seconds = delay
        for j, u in enumerate(raw.get("users", []) or []):
            uw = f"{where}.users[{j}]"
            upn = u.get("upn")
            if not isinstance(upn, str) or "@" not in upn:
                raise ScenarioError(f"{uw}.upn: expected user@domain")
            tenant.users.append(
                User(
                    upn=upn,
                    object_id=_guid(u["object_id"], f"{uw}.object_id")
                    if "object_id" in u
                    else str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{tid}:{upn.lower()}")),
                    display_name=str(u.get("name", upn.split("@")[0].title())),
                    admin=bool(u.get("admin", False)),
                    enabled=bool(u.get("enabled", True)),
                    app_roles=_app_role_refs(
                        _str_list(u.get("app_roles"), f"{uw}.app_roles"),
                        f"{uw}.app_roles",
                        known_apps,
                    ),
                    groups=_group_refs(u.get("groups"), f"{uw}.groups"),
                )
            )
            tenant.add_groups(tenant.users[-1].groups)
        for j, s in enumerate(raw.get("subscriptions", []) or []):
            sw = f"{where}.subscriptions[{j}]"
            tenant.subscriptions.append(
                Subscription(
                    id=_guid(s.get("id"), f"{sw}.id"),
                    name=str(s.get("name", "Subscription")),
                    roles=_app_role_refs(
                        _str_list(s.get("roles"), f"{sw}.roles"), f"{sw}.roles", known_apps
                    ),
                )
            )
        directory.tenants[tid] = tenant

    def tenant_ref(value: Any, where: str) -> str:
        tenant = directory.tenant(str(value or ""))
        if tenant is None:
            raise ScenarioError(f"{where}: unknown tenant {value!r}")
        return tenant.id

    for i, raw in enumerate(data.get("managed_identities", []) or []):
        where = f"managed_identities[{i}]"
        tid = tenant_ref(raw.get("tenant"), f"{where}.tenant")
        name = str(raw.get("name", f"identity-{i}"))
        subscription = next(iter(directory.tenants[tid].subscriptions), None)
        sub_id = subscription.id if subscription else "00000000-0000-0000-0000-000000000000"
        directory.managed_identities.append(
            ManagedIdentity(
                tenant=tid,
                name=name,
                client_id=_guid(raw.get("client_id"), f"{where}.client_id"),
                object_id=_guid(raw.get("object_id"), f"{where}.object_id"),
                resource_id=str(
                    raw.get(
                        "resource_id",
                        f"/subscriptions/{sub_id}/resourceGroups/sandbox/providers/"
                        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
                    )
                ),
            )
        )

    for i, raw in enumerate(raw_apps):
        where = f"applications[{i}]"
        client_id = _guid(raw.get("client_id"), f"{where}.client_id")
        if client_id in directory.applications:
            raise ScenarioError(f"{where}: duplicate client_id {client_id}")
        app = Application(
            tenant=tenant_ref(raw.get("tenant"), f"{where}.tenant"),
            client_id=client_id,
            name=str(raw.get("name", client_id)),
            multi_tenant=bool(raw.get("multi_tenant", False)),
            redirect_uris=_str_list(raw.get("redirect_uris"), f"{where}.redirect_uris"),
            permissions=_permissions(raw.get("permissions"), where),
            app_roles=_str_list(raw.get("app_roles"), f"{where}.app_roles"),
            enabled=bool(raw.get("enabled", True)),
            group_membership_claims=_group_claims(
                raw.get("group_membership_claims", "None"), where
            ),
            federated_credentials=[
                _federated_credential(f, f"{where}.federated_credentials[{j}]")
                for j, f in enumerate(raw.get("federated_credentials", []) or [])
            ],
        )
        directory.applications[client_id] = app
        # An app registration always has its service principal in its home tenant.
        directory.tenants[app.tenant].service_principals[client_id] = ServicePrincipal(
            client_id, _sp_object_id(app.tenant, client_id)
        )

    for i, raw in enumerate(data.get("consents", []) or []):
        where = f"consents[{i}]"
        tid = tenant_ref(raw.get("tenant"), f"{where}.tenant")
        client_id = _guid(raw.get("application"), f"{where}.application")
        if client_id not in directory.applications:
            raise ScenarioError(f"{where}.application: unknown application {client_id}")
        roles = _permissions(raw.get("roles"), where)
        sp = directory.tenants[tid].service_principals.setdefault(
            client_id, ServicePrincipal(client_id, _sp_object_id(tid, client_id))
        )
        sp.roles = roles
        sp.enabled = bool(raw.get("enabled", True))
    return directory
