"""Access profiles: what the MSSP needs in a customer tenant, per resource, in words.

Admin consent grants everything the app registration requests; a profile is the subset the
portal then *verifies* for a tenant. Application permissions are checked against the token's
`roles`; Azure Resource Manager and Logs Ingestion are governed by Azure RBAC role
assignments instead, which no token carries, so for those the probe alone decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Requirement:
    resource: str  # a key of mssp_portal.clouds.RESOURCE_KEYS
    permissions: tuple[str, ...] = ()  # application permissions (app roles) required
    rbac_role: str = ""  # an Azure RBAC role the customer assigns instead
    why: str = ""  # what the MSSP does with it, in the customer's words


@dataclass(frozen=True)
class AccessProfile:
    key: str
    name: str
    summary: str
    requirements: tuple[Requirement, ...] = field(default_factory=tuple)

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(r.resource for r in self.requirements)


_ORGANIZATION = Requirement(
    "graph",
    ("Organization.Read.All",),
    why="read your organisation's name and verified domains, to confirm we reached the "
    "right tenant",
)

PROFILES: dict[str, AccessProfile] = {
    profile.key: profile
    for profile in (
        AccessProfile(
            key="defender-xdr-readonly",
            name="Defender XDR — read-only",
            summary="Read security incidents and alerts from Microsoft Defender XDR.",
            requirements=(
                _ORGANIZATION,
                Requirement(
                    "defender",
                    ("Incident.Read.All",),
                    why="read incidents and their alerts; nothing is changed",
                ),
            ),
        ),
        AccessProfile(
            key="graph-reporting",
            name="Graph reporting",
            summary="Read directory and usage reports from Microsoft Graph.",
            requirements=(_ORGANIZATION,),
        ),
        AccessProfile(
            key="mde-indicators",
            name="Defender for Endpoint indicators",
            summary="Manage threat indicators (block and allow lists) in Defender for Endpoint.",
            requirements=(
                _ORGANIZATION,
                Requirement(
                    "mde",
                    ("Ti.ReadWrite.All",),
                    why="create, update and remove indicators of compromise",
                ),
            ),
        ),
        AccessProfile(
            key="log-analytics-ingestion",
            name="Log Analytics ingestion",
            summary="Send security logs into a Log Analytics workspace of yours.",
            requirements=(
                _ORGANIZATION,
                Requirement(
                    "loganalytics",
                    rbac_role="Monitoring Metrics Publisher",
                    why="send log records to your data collection rule; we cannot read them back",
                ),
            ),
        ),
        AccessProfile(
            key="full-soc",
            name="Full SOC service",
            summary="Incidents, indicators, subscription inventory and log ingestion.",
            requirements=(
                _ORGANIZATION,
                Requirement("defender", ("Incident.Read.All",), why="read incidents"),
                Requirement("mde", ("Ti.ReadWrite.All",), why="manage indicators"),
                Requirement(
                    "arm",
                    rbac_role="Reader",
                    why="list your Azure subscriptions and their resources, read-only",
                ),
                Requirement(
                    "loganalytics",
                    rbac_role="Monitoring Metrics Publisher",
                    why="send log records to your data collection rule",
                ),
            ),
        ),
    )
}

DEFAULT_PROFILE = "defender-xdr-readonly"
CHOICES = [(p.key, p.name) for p in PROFILES.values()]


def get(key: str) -> AccessProfile:
    return PROFILES[key]


def required_by_some_profile() -> dict[str, set[str]]:
    """Per resource, every application permission some access profile requires."""
    needed: dict[str, set[str]] = {}
    for profile in PROFILES.values():
        for requirement in profile.requirements:
            needed.setdefault(requirement.resource, set()).update(requirement.permissions)
    return needed


def unneeded_roles(results: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Per resource, the roles a verification's tokens carried (`roles_seen`) that no
    access profile requires: permissions the app asks every customer for and the MSSP
    never uses (least privilege)."""
    needed = required_by_some_profile()
    unneeded = {}
    for resource, result in (results or {}).items():
        seen = result.get("roles_seen") if isinstance(result, Mapping) else None
        extra = sorted(set(seen or []) - needed.get(resource, set()))
        if extra:
            unneeded[resource] = extra
    return unneeded


@dataclass(frozen=True)
class Change:
    """What moving a tenant from one profile to another changes for one resource."""

    resource: str
    before: Requirement | None
    after: Requirement | None

    @property
    def permissions_added(self) -> list[str]:
        old = set(self.before.permissions) if self.before else set()
        return [p for p in (self.after.permissions if self.after else ()) if p not in old]

    @property
    def permissions_removed(self) -> list[str]:
        new = set(self.after.permissions) if self.after else set()
        return [p for p in (self.before.permissions if self.before else ()) if p not in new]

    @property
    def rbac_role_added(self) -> str:
        role = self.after.rbac_role if self.after else ""
        return role if role and role != (self.before.rbac_role if self.before else "") else ""

    @property
    def rbac_role_removed(self) -> str:
        role = self.before.rbac_role if self.before else ""
        return role if role and role != (self.after.rbac_role if self.after else "") else ""

    @property
    def kind(self) -> str:
        """What is verified that was not, or the reverse (the words of `why` do not count)."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        same = set(self.before.permissions) == set(self.after.permissions)
        return "same" if same and self.before.rbac_role == self.after.rbac_role else "changed"


def changes(old: AccessProfile, new: AccessProfile) -> list[Change]:
    """Per resource of either profile, in the new profile's order then the old one's."""
    before = {r.resource: r for r in old.requirements}
    after = {r.resource: r for r in new.requirements}
    order = list(dict.fromkeys([*after, *before]))
    return [Change(resource, before.get(resource), after.get(resource)) for resource in order]


def not_yet_granted(
    new: AccessProfile, results: Mapping[str, Any] | None
) -> tuple[dict[str, list[str]], list[str]]:
    """Against a tenant's latest verification: per resource, the permissions `new` requires
    that its tokens did not carry (the consent lacks them: a re-consent is needed), and the
    resources of `new` no token was obtained for, whose permissions are not known yet."""
    lacking: dict[str, list[str]] = {}
    unknown: list[str] = []
    for requirement in new.requirements:
        if not requirement.permissions:
            continue
        result = (results or {}).get(requirement.resource)
        if not isinstance(result, Mapping) or result.get("token") != "ok":
            unknown.append(requirement.resource)
            continue
        seen = set(result.get("roles_seen") or [])
        missing = [p for p in requirement.permissions if p not in seen]
        if missing:
            lacking[requirement.resource] = missing
    return lacking, unknown
