"""A token that names another tenant never verifies the tenant asked for (the callback's
`tenant` is a hint; the token's `tid` is the proof)."""

from __future__ import annotations

from entra_sandbox.testing import issue_tokens_for_another_tenant
from tenants.models import Tenant, Verification
from tenants.verification import diagnosis
from tests.conftest import HOME_TENANT, NORTHWIND, WOODGROVE

Outcome = Verification.Outcome


def test_it_never_verifies_a_tenant_whose_tokens_name_another_tenant(
    sandbox, consent, make_tenant, verify
):
    consent(NORTHWIND)
    consent(WOODGROVE)
    tenant = make_tenant(NORTHWIND, "graph-reporting")
    issue_tokens_for_another_tenant(sandbox, NORTHWIND, WOODGROVE)
    sandbox.control.reset_counters()

    first = verify(tenant)
    second = verify(tenant)

    for verification in (first, second):
        assert verification.outcome == Outcome.NO_ACCESS
        assert verification.diagnosis == "tenant_mismatch"
        assert verification.results["graph"]["token"] == "ok"
        assert verification.results["graph"]["tid_matches"] is False
    assert tenant.status == Tenant.Status.NO_ACCESS
    assert tenant.last_verified_at is None
    # The other tenant's token is never sent to an API in the tenant's name.
    counts = sandbox.control.counters()["by_kind"]
    assert counts.get("graph", 0) == 0
    assert tenant.display_name != "Woodgrove Bank"
    explanation = diagnosis.describe(second)
    assert explanation.title == "Token from another tenant"
    assert f"Check that {NORTHWIND} is the customer's tenant id" in explanation.remediation[0]


def test_it_verifies_again_once_tokens_name_the_tenant(sandbox, consent, make_tenant, verify):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND, "graph-reporting")
    issue_tokens_for_another_tenant(sandbox, NORTHWIND, HOME_TENANT, count=1)

    assert verify(tenant).diagnosis == "tenant_mismatch"
    assert verify(tenant).outcome == Outcome.VERIFIED
    assert tenant.status == Tenant.Status.VERIFIED
