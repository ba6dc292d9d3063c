"""Sandbox directories of our own, for tests that need customers the demo does not have (a
fleet of 50 or 200, a customer with a hostile name): the MSSP's home tenant with its managed
identity and the portal's app trusting it, and customers that all consented."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.conftest import (
    HOME_TENANT,
    MANAGED_IDENTITY_CLIENT_ID,
    MANAGED_IDENTITY_OBJECT_ID,
    PORTAL_APP,
)

GRAPH_ONLY = {"graph": ["Organization.Read.All"]}
# The federated credential the portal's app needs: the home tenant's issuer, the identity's
# object id, the public cloud's audience.
GOOD_FIC = {
    "name": "mssp-automation",
    "issuer": f"{{authority}}/{HOME_TENANT}/v2.0",
    "subject": MANAGED_IDENTITY_OBJECT_ID,
    "audiences": ["api://AzureADTokenExchange"],
}


def consented(
    customers: Iterable[Mapping[str, object]],
    permissions: Mapping[str, list[str]] = GRAPH_ONLY,
) -> dict[str, object]:
    """A scenario in which every customer (`{"id", "name", "domain"}`) consented to the
    portal's app, which requests `permissions`."""
    customers = [dict(c) for c in customers]
    return {
        "tenants": [
            {"id": HOME_TENANT, "name": "Fabrikam Security", "domain": "fabrikam-mssp.example"},
            *customers,
        ],
        "managed_identities": [
            {
                "tenant": HOME_TENANT,
                "name": "mssp-automation",
                "client_id": MANAGED_IDENTITY_CLIENT_ID,
                "object_id": MANAGED_IDENTITY_OBJECT_ID,
            }
        ],
        "applications": [
            {
                "tenant": HOME_TENANT,
                "client_id": PORTAL_APP,
                "name": "Fabrikam MSSP Portal",
                "multi_tenant": True,
                "permissions": dict(permissions),
                "federated_credentials": [GOOD_FIC],
            }
        ],
        "consents": [
            {"tenant": c["id"], "application": PORTAL_APP, "roles": dict(permissions)}
            for c in customers
        ],
    }
