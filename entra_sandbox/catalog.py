"""The resource APIs the sandbox knows: their public-cloud identifiers and permissions.

The identifiers are the real public-cloud ones, so a client keeps its real scopes
(``https://graph.microsoft.com/.default``) and only changes base URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The AAD token exchange endpoint: a managed identity token requested for
# `api://AzureADTokenExchange` carries this application id as its `aud`.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"


@dataclass(frozen=True)
class Resource:
    key: str
    uri: str
    display_name: str
    # Well-known first-party application ids that Entra also accepts as the resource.
    app_ids: tuple[str, ...] = ()
    # Azure RBAC resources (ARM, Logs Ingestion) authorise by role assignment, never by
    # app roles in the token, so their tokens carry no `roles` claim.
    uses_app_roles: bool = True
    permissions: dict[str, str] = field(default_factory=dict)

    @property
    def identifiers(self) -> tuple[str, ...]:
        return (self.uri, *self.app_ids)


RESOURCES: dict[str, Resource] = {
    r.key: r
    for r in (
        Resource(
            "graph",
            "https://graph.microsoft.com",
            "Microsoft Graph",
            ("00000003-0000-0000-c000-000000000000",),
            permissions={
                "Organization.Read.All": "Read organization information",
                "Directory.Read.All": "Read directory data",
                "User.Read.All": "Read all users' full profiles",
                "AuditLog.Read.All": "Read all audit log data",
                "SecurityEvents.Read.All": "Read your organization's security events",
                "Application.Read.All": "Read all applications",
                "GroupMember.Read.All": "Read all group memberships",
                "AppRoleAssignment.ReadWrite.All": "Manage app permission grants and app role "
                "assignments",
            },
        ),
        Resource(
            "defender",
            "https://api.security.microsoft.com",
            "Microsoft Threat Protection (Defender XDR)",
            ("8ee8fdad-f234-4243-8f3b-15c294843740",),
            permissions={
                "Incident.Read.All": "Read all incidents",
                "Incident.ReadWrite.All": "Read and write all incidents",
                "AdvancedHunting.Read.All": "Run advanced queries",
            },
        ),
        Resource(
            "mde",
            "https://api.securitycenter.microsoft.com",
            "WindowsDefenderATP (Defender for Endpoint)",
            ("fc780465-2017-40d4-a0c5-307022471b92",),
            permissions={
                "Ti.ReadWrite": "Read and write IOCs belonging to the app",
                "Ti.ReadWrite.All": "Read and write all IOCs",
                "Ti.Read.All": "Read all IOCs",
                "Machine.Read.All": "Read all machine profiles",
            },
        ),
        Resource(
            "arm",
            "https://management.azure.com",
            "Azure Resource Manager",
            ("797f4846-ba00-4fd7-ba43-dac1f8f63013",),
            uses_app_roles=False,
        ),
        Resource(
            "loganalytics",
            "https://monitor.azure.com",
            "Azure Monitor (Logs Ingestion)",
            uses_app_roles=False,
        ),
    )
}


def resource_for_identifier(identifier: str) -> Resource | None:
    """The resource named by a scope/resource value (URI, with or without a trailing
    slash, any case, or one of its well-known application ids)."""
    wanted = identifier.strip().rstrip("/").lower()
    for resource in RESOURCES.values():
        if wanted in (i.lower() for i in resource.identifiers):
            return resource
    return None


def describe_permission(resource_key: str, permission: str) -> str:
    resource = RESOURCES.get(resource_key)
    if resource is None:
        return permission
    return resource.permissions.get(permission, permission)
