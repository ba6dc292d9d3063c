"""Every tenant-side outcome against the sandbox: verified, incomplete, no access."""

from __future__ import annotations

from tenants.models import Tenant, Verification
from tenants.verification import diagnosis
from tests.conftest import ADATUM, NORTHWIND, PORTAL_APP, TAILSPIN, WOODGROVE

Outcome = Verification.Outcome


def test_it_verifies_a_consented_healthy_tenant(sandbox, consent, make_tenant, verify):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND, "full-soc")

    verification = verify(tenant)

    assert verification.outcome == Outcome.VERIFIED
    assert verification.diagnosis == "verified"
    assert tenant.status == Tenant.Status.VERIFIED
    assert tenant.last_verified_at == verification.finished_at
    assert tenant.display_name == "Northwind Traders"
    assert tenant.primary_domain == "northwind.example"
    assert set(verification.results) == {"graph", "defender", "mde", "arm", "loganalytics"}
    graph = verification.results["graph"]
    assert graph["token"] == "ok"
    assert graph["tid_matches"] is True
    assert graph["roles_seen"] == ["Organization.Read.All"]
    assert graph["roles_missing"] == []
    assert graph["probe"] == {"status": 200, "ok": True, "detail": "HTTP 200"}
    assert verification.results["arm"]["probe"]["detail"] == "HTTP 200, 1 subscription(s)"
    assert verification.results["loganalytics"]["probe"]["status"] == 204
    explanation = diagnosis.describe(verification)
    assert explanation.title == "Access verified"
    assert "nothing more to do" in explanation.customer_text


def test_it_gets_a_fresh_token_from_entra_on_every_verification(
    sandbox, consent, make_tenant, verify
):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    sandbox.control.reset_counters()

    verify(tenant)
    verify(tenant)

    counts = sandbox.control.counters()["by_tenant"][NORTHWIND]
    assert counts["token"] == 4  # graph + defender, twice: no cached token
    assert sandbox.control.counters()["by_kind"]["mi"] == 1  # one assertion serves both


def test_it_reports_no_access_for_a_tenant_that_never_consented(sandbox, make_tenant, verify):
    tenant = make_tenant(ADATUM)

    verification = verify(tenant)

    assert verification.outcome == Outcome.NO_ACCESS
    assert verification.diagnosis == "not_consented"
    assert verification.error_code == "AADSTS700016"
    assert tenant.status == Tenant.Status.NO_ACCESS
    graph = verification.results["graph"]
    assert graph["token"] == "failed"
    assert graph["error"] == "unauthorized_client"
    assert graph["http_status"] == 400
    # A tenant-wide fault: the other resources are not asked.
    assert verification.results["defender"]["token"] == "skipped"


def test_it_notices_consent_revoked_after_verification(sandbox, consent, make_tenant, verify):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    assert verify(tenant).outcome == Outcome.VERIFIED

    sandbox.control.revoke(NORTHWIND)
    verification = verify(tenant)

    assert verification.outcome == Outcome.NO_ACCESS
    assert verification.diagnosis == "not_consented"
    assert tenant.status == Tenant.Status.NO_ACCESS
    assert tenant.verifications.count() == 2  # history kept


def test_it_reports_an_app_disabled_in_the_tenant(sandbox, consent, make_tenant, verify):
    consent(WOODGROVE)
    tenant = make_tenant(WOODGROVE)
    verify(tenant)
    sandbox.control.disable(WOODGROVE)

    verification = verify(tenant)

    assert verification.outcome == Outcome.NO_ACCESS
    assert verification.diagnosis == "app_disabled"
    assert verification.error_code == "AADSTS7000112"
    assert tenant.status == Tenant.Status.NO_ACCESS
    assert "Enabled for users to sign in" in diagnosis.describe(verification).customer_text


def test_it_reports_a_missing_defender_licence_as_incomplete(sandbox, consent, make_tenant, verify):
    consent(TAILSPIN)
    tenant = make_tenant(TAILSPIN, "full-soc")

    verification = verify(tenant)

    assert verification.outcome == Outcome.INCOMPLETE
    assert verification.diagnosis == "resource_not_provisioned"
    assert verification.error_code == "AADSTS500011"
    assert tenant.status == Tenant.Status.INCOMPLETE
    results = verification.results
    assert results["graph"]["diagnosis"] == "verified"
    assert results["defender"]["diagnosis"] == "resource_not_provisioned"
    assert results["mde"]["diagnosis"] == "resource_not_provisioned"
    # Tailspin has no subscription the app holds a role on, and no ingestion role.
    assert results["arm"]["diagnosis"] == "arm_no_subscriptions"
    assert results["loganalytics"]["diagnosis"] == "rbac_role_missing"
    explanation = diagnosis.describe(verification)
    text = " ".join(explanation.remediation)
    assert "Microsoft Defender XDR is not provisioned" in text
    assert diagnosis.LICENCES["defender"] in text
    assert "'Reader' on each subscription the MSSP is to see" in text
    assert "'Monitoring Metrics Publisher' on the data collection rule" in text
    assert "Microsoft Defender XDR is not available in your organisation" in (
        explanation.customer_text
    )


def test_it_reports_a_permission_added_after_consent(sandbox, consent, make_tenant, verify):
    # The customer consented when the app asked for Graph only ...
    consent(NORTHWIND, {"graph": ["Organization.Read.All"]})
    tenant = make_tenant(NORTHWIND, "mde-indicators")
    # ... then the MSSP added a Defender for Endpoint permission to the app.
    sandbox.control.update_application(
        PORTAL_APP, permissions={"graph": ["Organization.Read.All"], "mde": ["Ti.ReadWrite.All"]}
    )

    verification = verify(tenant)

    assert verification.outcome == Outcome.INCOMPLETE
    assert verification.diagnosis == "role_missing"
    mde = verification.results["mde"]
    assert mde["token"] == "ok"  # the token works ...
    assert mde["roles_seen"] == []
    assert mde["roles_missing"] == ["Ti.ReadWrite.All"]  # ... without the role
    assert mde["probe"]["status"] == 403
    remediation = " ".join(diagnosis.describe(verification).remediation)
    assert "Ti.ReadWrite.All" in remediation
    assert "consent must be granted again" in remediation

    consent(NORTHWIND)  # consent granted again
    assert verify(tenant).outcome == Outcome.VERIFIED
    assert tenant.status == Tenant.Status.VERIFIED


def test_it_reports_a_deleted_tenant(sandbox, consent, make_tenant, verify):
    consent(WOODGROVE)
    tenant = make_tenant(WOODGROVE)
    sandbox.control.delete_tenant(WOODGROVE)

    verification = verify(tenant)

    assert verification.outcome == Outcome.NO_ACCESS
    assert verification.diagnosis == "tenant_not_found"
    assert verification.error_code == "AADSTS90002"
    assert verification.results["graph"]["error"] == "invalid_tenant"
    assert tenant.status == Tenant.Status.NO_ACCESS


def test_it_asks_for_log_ingestion_settings_outside_the_sandbox_defaults(
    sandbox, consent, make_tenant, verify
):
    consent(NORTHWIND)
    tenant = make_tenant(
        NORTHWIND,
        "log-analytics-ingestion",
        probe_settings={"loganalytics": {"endpoint": "https://attacker.example"}},
    )
    sandbox.control.reset_counters()

    verification = verify(tenant)

    assert verification.outcome == Outcome.INCOMPLETE
    assert verification.diagnosis == "loganalytics_not_configured"
    assert verification.results["loganalytics"]["token"] == "ok"
    assert verification.results["loganalytics"]["probe"]["ok"] is False
    assert sandbox.control.counters()["by_kind"].get("loganalytics", 0) == 0


def test_it_never_requests_a_token_for_an_offboarded_tenant(sandbox, consent, make_tenant):
    from tenants.verification.runner import run_verification

    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    verification, _ = tenant.request_verification(Verification.Trigger.MANUAL)
    tenant.status = Tenant.Status.OFFBOARDED
    tenant.save(update_fields=["status"])
    sandbox.control.reset_counters()

    finished = run_verification(str(verification.code))

    assert finished.outcome == Outcome.CANCELLED
    assert finished.diagnosis == "offboarded"
    assert sandbox.control.counters()["total"] == 0
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.OFFBOARDED


def test_it_logs_no_raw_entra_error_text(sandbox, make_tenant, verify, caplog):
    # Entra's error_description names the customer's directory: customer-controlled text.
    tenant = make_tenant(ADATUM)

    verify(tenant)

    assert "verification" in caplog.text
    assert "outcome=no_access diagnosis=not_consented code=AADSTS700016" in caplog.text
    assert "Adatum" not in caplog.text
    assert "error_description" not in caplog.text
