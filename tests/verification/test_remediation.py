"""Every catalogued diagnosis, filled in: the remediation names the tenant where the fix is
made and the app it is made on — the customer's tenant for the customer's steps, the home
tenant and the MSSP's multi-tenant app for the MSSP's — and, for `manage.py doctor`'s
exchange in the home tenant, never a customer's remedy."""

from __future__ import annotations

import pytest

from tenants.models import Tenant, Verification
from tenants.verification import diagnosis
from tests.conftest import (
    HOME_TENANT,
    LITWARE_LOCAL_APP,
    MANAGED_IDENTITY_CLIENT_ID,
    NORTHWIND,
    PORTAL_APP,
)

Outcome = Verification.Outcome
APP_NAME = "Fabrikam MSSP Portal"  # ENTRA_APP_DISPLAY_NAME in tests/settings.py
CODE = "AADSTS4242"

# key: (resource the problem is on, or None; what the remediation must name; what it must not)
EXPECTED: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "verified": (None, (), ()),
    "not_consented": (None, (NORTHWIND, PORTAL_APP, APP_NAME, "consent link"), (HOME_TENANT,)),
    "consent_required": (None, (NORTHWIND, PORTAL_APP, "consent link"), (HOME_TENANT,)),
    "app_disabled": (None, (NORTHWIND, PORTAL_APP, APP_NAME), (HOME_TENANT, "consent link")),
    "tenant_not_found": (None, (NORTHWIND, "sandbox"), (HOME_TENANT,)),
    "tenant_mismatch": (None, (NORTHWIND,), (HOME_TENANT,)),
    "wrong_cloud": (None, (NORTHWIND, "sandbox"), (HOME_TENANT,)),
    "resource_not_provisioned": ("defender", (NORTHWIND, "Defender XDR licence"), ()),
    "role_missing": ("defender", (NORTHWIND, PORTAL_APP, HOME_TENANT, "consent link"), ()),
    "rbac_role_missing": (
        "arm",
        (NORTHWIND, PORTAL_APP, APP_NAME, "'Reader'", "subscription"),
        (HOME_TENANT, "consent link"),
    ),
    "arm_no_subscriptions": (
        "arm",
        (NORTHWIND, PORTAL_APP, "'Reader'", "subscription"),
        (HOME_TENANT, "consent link"),
    ),
    "probe_forbidden": ("defender", (NORTHWIND, "Defender XDR"), ("consent link",)),
    "probe_unauthorized": ("mde", (NORTHWIND, "Defender for Endpoint"), ("consent link",)),
    "probe_failed": ("graph", (NORTHWIND,), ("consent link",)),
    "loganalytics_not_configured": ("loganalytics", (NORTHWIND, "dcr"), ("consent link",)),
    "resource_unavailable_in_cloud": ("mde", (NORTHWIND, "sandbox"), ()),
    "entra_object_not_found": (None, (NORTHWIND, CODE), ("consent link",)),
    "identity_unavailable": (None, (MANAGED_IDENTITY_CLIENT_ID, HOME_TENANT), (NORTHWIND,)),
    "fic_mismatch": (None, (HOME_TENANT, PORTAL_APP, "Subject:"), (NORTHWIND, "consent link")),
    "fic_issuer_mismatch": (None, (HOME_TENANT, PORTAL_APP, "Issuer:"), (NORTHWIND,)),
    "fic_audience_mismatch": (None, (HOME_TENANT, PORTAL_APP, "Audience:"), (NORTHWIND,)),
    "fic_subject_mismatch": (None, (HOME_TENANT, PORTAL_APP, "Subject:"), (NORTHWIND,)),
    "fic_missing": (None, (HOME_TENANT, PORTAL_APP), (NORTHWIND,)),
    "fic_wrong_direction": (None, (HOME_TENANT, NORTHWIND, "'Multiple organizations'"), ()),
    "federation_not_allowed": (
        None,
        (HOME_TENANT, MANAGED_IDENTITY_CLIENT_ID, PORTAL_APP),
        (NORTHWIND,),
    ),
    "assertion_time_invalid": (None, ("clock",), (NORTHWIND,)),
    "assertion_invalid": (None, ("managed identity",), (NORTHWIND,)),
    "client_secret_rejected": (None, ("client secret",), (NORTHWIND,)),
    "invalid_scope": (None, ("ENTRA_CLOUD",), (NORTHWIND,)),
    "exchange_rejected": (None, (PORTAL_APP, NORTHWIND, "sandbox"), ()),
    "throttled": (None, ("VERIFY_CONCURRENCY",), ()),
    "entra_unavailable": (None, ("scheduler",), ()),
    "network_error": (None, ("network",), ()),
    "probe_throttled": (None, ("scheduler",), ()),
    "probe_unavailable": (None, ("scheduler",), ()),
    "internal_error": (None, ("worker's log",), ()),
    "offboarded": (None, (), ()),
    "unclassified": (None, (CODE,), ()),
}


def test_the_table_covers_the_whole_catalogue():
    assert set(EXPECTED) == set(diagnosis.CATALOGUE)


def _verification(tenant: Tenant, key: str, resource: str | None) -> Verification:
    entry = diagnosis.get(key)
    results = {}
    if resource is not None:
        results = {resource: {"diagnosis": key, "roles_missing": ["Incident.Read.All"]}}
    return Verification.objects.create(
        tenant=tenant,
        trigger=Verification.Trigger.MANUAL,
        state=Verification.State.DONE,
        outcome=entry.outcome,
        diagnosis=key,
        error_code=CODE,
        results=results,
        platform={"app_client_id": PORTAL_APP},
    )


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_the_customer_tenant_remediation_names_the_right_tenant_and_app(db, key):
    resource, named, never = EXPECTED[key]
    tenant = Tenant.objects.create(
        tenant_id=NORTHWIND, cloud="sandbox", access_profile="full-soc", display_name="Northwind"
    )
    verification = _verification(tenant, key, resource)

    text = "\n".join(
        diagnosis.describe(verification, consent_link="https://portal.test/consent/x/").remediation
    )

    for word in named:
        assert word in text, (key, word, text)
    for word in never:
        assert word not in text, (key, word, text)
    if key == "internal_error":
        assert str(verification.code) in text


# What a token request in the home tenant can answer (`manage.py doctor`'s exchange).
TOKEN_KEYS = sorted(
    key
    for key, entry in diagnosis.CATALOGUE.items()
    if (entry.codes or key == "tenant_mismatch")
    and entry.outcome in (Outcome.NO_ACCESS, Outcome.PLATFORM_ERROR)
)


@pytest.mark.parametrize("key", TOKEN_KEYS)
def test_the_home_tenant_remediation_never_sends_the_mssp_to_itself_as_a_customer(db, key):
    tenant = Tenant(tenant_id=HOME_TENANT, cloud="sandbox", access_profile="graph-reporting")
    verification = Verification(
        tenant=tenant,
        outcome=diagnosis.get(key).outcome,
        diagnosis=key,
        error_code=CODE,
        platform={"app_client_id": PORTAL_APP},
    )

    text = "\n".join(diagnosis.describe(verification).remediation)

    assert text
    for wrong in ("invitation for tenant", "consent link", "Ask the customer", "offboard"):
        assert wrong not in text, (key, wrong, text)
    if key in ("not_consented", "consent_required", "app_disabled", "tenant_not_found"):
        assert HOME_TENANT in text and "run `manage.py doctor` again" in text


def test_the_wrong_direction_remediation_puts_the_credential_on_the_home_app(db):
    tenant = Tenant.objects.create(tenant_id=NORTHWIND, cloud="sandbox", access_profile="full-soc")
    Verification.objects.create(
        tenant=tenant,
        trigger=Verification.Trigger.MANUAL,
        state=Verification.State.DONE,
        outcome=Outcome.VERIFIED,
        diagnosis="verified",
        platform={"app_client_id": PORTAL_APP},
    )
    wrong = Verification(
        tenant=tenant,
        outcome=Outcome.PLATFORM_ERROR,
        diagnosis="fic_wrong_direction",
        platform={"app_client_id": LITWARE_LOCAL_APP},
    )

    text = "\n".join(diagnosis.describe(wrong).remediation)

    assert f"Set ENTRA_APP_CLIENT_ID to {PORTAL_APP}" in text
    assert f"In the home tenant {HOME_TENANT}, app registration {PORTAL_APP} →" in text
    assert f"app registration {LITWARE_LOCAL_APP}" not in text
    assert f"verify tenant {NORTHWIND} again" in text
