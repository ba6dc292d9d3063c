"""Faults on the MSSP's side: they change no tenant and raise one platform alert."""

from __future__ import annotations

import uuid

import pytest

from mssp_portal import identity
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification import diagnosis
from tenants.verification.runner import run_batch
from tests.conftest import (
    HOME_TENANT,
    LITWARE,
    LITWARE_LOCAL_APP,
    MANAGED_IDENTITY_CLIENT_ID,
    MANAGED_IDENTITY_OBJECT_ID,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
    WOODGROVE,
)

Outcome = Verification.Outcome
GOOD_FIC = {
    "name": "mssp-automation",
    "issuer": f"{{authority}}/{HOME_TENANT}/v2.0",
    "subject": MANAGED_IDENTITY_OBJECT_ID,
    "audiences": ["api://AzureADTokenExchange"],
}


def _fic(**changes) -> list[dict]:
    return [{**GOOD_FIC, **changes}]


@pytest.fixture
def verified_northwind(sandbox, consent, make_tenant, verify) -> Tenant:
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    assert verify(tenant).outcome == Outcome.VERIFIED
    return tenant


def _assert_unchanged(tenant: Tenant) -> None:
    before = (tenant.status, tenant.status_since, tenant.diagnosis, tenant.stale_since)
    tenant.refresh_from_db()
    assert (tenant.status, tenant.status_since, tenant.diagnosis, tenant.stale_since) == before


@pytest.mark.parametrize(
    ("credential", "key", "code"),
    [
        (_fic(issuer=f"{{authority}}/{HOME_TENANT}/v2"), "fic_issuer_mismatch", "AADSTS700211"),
        (_fic(audiences=["api://AzureADTokenExchang"]), "fic_audience_mismatch", "AADSTS700212"),
        # The classic slip: the identity's client id where its object id belongs.
        (_fic(subject=MANAGED_IDENTITY_CLIENT_ID), "fic_subject_mismatch", "AADSTS700213"),
        (
            _fic(issuer="https://login.example/x/v2.0", subject="someone", audiences=["api://x"]),
            "fic_mismatch",
            "AADSTS70021",
        ),
        ([], "fic_missing", "AADSTS70025"),
    ],
)
def test_it_diagnoses_a_federated_credential_typo_as_a_platform_error(
    sandbox, verified_northwind, verify, credential, key, code
):
    sandbox.control.update_application(PORTAL_APP, federated_credentials=credential)

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.PLATFORM_ERROR
    assert verification.diagnosis == key
    assert verification.error_code == code
    _assert_unchanged(verified_northwind)
    alert = PlatformAlert.objects.open().get()
    assert alert.key == key
    # The exact values the home tenant needs, from the managed identity token's own claims.
    remediation = diagnosis.describe(verification).remediation
    assert f"Issuer: {sandbox.authority}/{HOME_TENANT}/v2.0" in remediation
    assert f"Subject: {MANAGED_IDENTITY_OBJECT_ID}" in remediation
    assert "Audience: api://AzureADTokenExchange" in remediation
    assert f"Subject: {MANAGED_IDENTITY_OBJECT_ID}" in alert.detail
    assert verification.platform["assertion"]["sub"] == MANAGED_IDENTITY_OBJECT_ID
    assert "nothing for you to do" in diagnosis.describe(verification).customer_text


def test_it_diagnoses_a_wrong_direction_federated_credential(
    sandbox, consent, make_tenant, verify, settings
):
    # Litware's admin registered an app in Litware with a FIC trusting the MSSP's identity,
    # and the portal was pointed at it.
    settings.ENTRA_APP_CLIENT_ID = LITWARE_LOCAL_APP
    tenant = make_tenant(LITWARE)

    verification = verify(tenant)

    assert verification.outcome == Outcome.PLATFORM_ERROR
    assert verification.diagnosis == "fic_wrong_direction"
    assert verification.error_code == "AADSTS700236"
    assert tenant.status == Tenant.Status.CONSENT_REPORTED
    remediation = " ".join(diagnosis.describe(verification).remediation)
    assert f"ENTRA_APP_CLIENT_ID is {LITWARE_LOCAL_APP}, an app registered outside" in remediation
    assert f"verify tenant {LITWARE} again" in remediation
    assert f"Subject: {MANAGED_IDENTITY_OBJECT_ID}" in remediation
    assert PlatformAlert.objects.open().get().key == "fic_wrong_direction"


def test_it_raises_a_platform_alert_when_the_identity_endpoint_is_down(
    sandbox, verified_northwind, verify
):
    sandbox.control.add_fault(target="mi", status=503)
    identity.forget_assertion()  # a worker that starts now, with no assertion cached
    sandbox.control.reset_counters()

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.PLATFORM_ERROR
    assert verification.diagnosis == "identity_unavailable"
    assert verification.results["graph"]["token"] == "failed"
    assert verification.results["defender"]["token"] == "skipped"
    counters = sandbox.control.counters()["by_kind"]
    assert counters["mi"] == 3  # the first request and VERIFY_RETRIES=2 retries
    assert counters.get("token", 0) == 0  # nothing to present to Entra
    _assert_unchanged(verified_northwind)
    assert PlatformAlert.objects.open().get().title == "Managed identity unavailable"


def test_it_refreshes_a_fresh_assertion_once_then_blames_the_clock(
    sandbox, verified_northwind, verify
):
    # Entra's clock two days ahead: the managed identity's token (24 h) looks expired, and
    # so does a freshly requested one.
    sandbox.control.set_clock_skew(2 * 86400)
    sandbox.control.reset_counters()

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.PLATFORM_ERROR
    assert verification.diagnosis == "assertion_time_invalid"
    assert verification.error_code == "AADSTS700024"
    counters = sandbox.control.counters()
    assert counters["by_kind"]["mi"] == 1  # the cached assertion refused, one fresh asked for
    assert counters["by_tenant"][NORTHWIND]["token"] == 2
    _assert_unchanged(verified_northwind)
    explanation = diagnosis.describe(verification)
    assert explanation.title == "Assertion time invalid — check clock"
    assert any("was valid from" in line for line in explanation.remediation)


def test_it_recovers_from_an_assertion_cached_past_its_time(sandbox, verified_northwind, verify):
    # A cached assertion Entra refuses once (700024), then a fresh one that it accepts.
    sandbox.control.set_clock_skew(2 * 86400)
    verify(verified_northwind)
    sandbox.control.set_clock_skew(0)

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.VERIFIED


@pytest.mark.django_db(transaction=True)
def test_a_fleet_failing_at_once_raises_one_alert_and_flips_no_tenant(
    sandbox, consent, make_tenant, verify
):
    tenants = []
    for tid in (NORTHWIND, TAILSPIN, WOODGROVE):
        consent(tid)
        tenant = make_tenant(tid, "graph-reporting")
        verify(tenant)
        tenants.append(tenant)
    assert {t.status for t in tenants} == {Tenant.Status.VERIFIED}
    sandbox.control.update_application(
        PORTAL_APP, federated_credentials=_fic(subject=MANAGED_IDENTITY_CLIENT_ID)
    )

    codes = [str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code) for t in tenants]
    finished = run_batch(codes, concurrency=3)

    assert [v.outcome for v in finished] == [Outcome.PLATFORM_ERROR] * 3
    for tenant in tenants:
        _assert_unchanged(tenant)
    alert = PlatformAlert.objects.open().get()
    assert alert.key == "fic_subject_mismatch"
    assert alert.occurrences == 3

    # Fixed: the next successful exchange resolves the alert.
    sandbox.control.update_application(PORTAL_APP, federated_credentials=[GOOD_FIC])
    assert verify(tenants[0]).outcome == Outcome.VERIFIED
    assert not PlatformAlert.objects.open().exists()
    assert PlatformAlert.objects.get().resolved_at is not None


def _forged_assertion(sandbox) -> str:
    """A token with the managed identity's claims, signed by a key Entra never issued."""
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": f"{sandbox.authority}/{HOME_TENANT}/v2.0",
        "sub": MANAGED_IDENTITY_OBJECT_ID,
        "aud": "fb60f99c-7a34-4190-8149-302f77469936",
        "tid": HOME_TENANT,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "forged"})


@pytest.mark.parametrize(
    ("content", "code"),
    [("forged", "AADSTS700027"), ("not a token at all", "AADSTS50027")],
)
def test_it_rejects_a_bad_workload_identity_token_as_a_platform_error(
    sandbox, verified_northwind, verify, settings, tmp_path, content, code
):
    # Kubernetes workload identity: the assertion is read from the projected token file.
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(_forged_assertion(sandbox) if content == "forged" else content)
    settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE = str(token_file)
    sandbox.control.reset_counters()

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.PLATFORM_ERROR
    assert verification.diagnosis == "assertion_invalid"
    assert verification.error_code == code
    assert sandbox.control.counters()["by_kind"].get("mi", 0) == 0  # the file, not the endpoint
    _assert_unchanged(verified_northwind)
    assert PlatformAlert.objects.open().get().key == "assertion_invalid"


def test_it_takes_the_assertion_from_a_workload_identity_token_file(
    sandbox, verified_northwind, verify, settings, tmp_path
):
    # What the kubelet projects: a token of the identity for api://AzureADTokenExchange.
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(identity.assertion())
    settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE = str(token_file)
    sandbox.control.reset_counters()

    verification = verify(verified_northwind)

    assert verification.outcome == Outcome.VERIFIED
    assert sandbox.control.counters()["by_kind"].get("mi", 0) == 0


@pytest.mark.django_db(transaction=True)
def test_a_batch_stops_asking_entra_once_the_identity_endpoint_is_down(
    sandbox, consent, make_tenant
):
    """Fault drill: the identity endpoint goes down before a 40-tenant round. Each verification
    that asks it retries for seconds; the batch stops asking after the first failures, the
    rest finish at once as held back, no tenant changes, one alert. The next batch, with the
    alert open, sends one verification ahead and, the fault fixed, verifies the rest."""
    consent(NORTHWIND)
    tenants = [make_tenant(NORTHWIND, "graph-reporting")]
    tenants += [
        Tenant.objects.create(
            tenant_id=uuid.uuid4(), cloud="sandbox", access_profile="graph-reporting"
        )
        for _ in range(39)
    ]
    sandbox.control.add_fault(target="mi", status=503)
    identity.forget_assertion()
    sandbox.control.reset_counters()

    codes = [str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code) for t in tenants]
    finished = run_batch(codes, concurrency=4)

    assert [v.outcome for v in finished] == [Outcome.PLATFORM_ERROR] * 40
    asked = [v for v in finished if "held_back_by" not in v.platform]
    assert 1 <= len(asked) <= 4  # those already running when the first one failed
    # At most one identity request and its two retries per verification that asked.
    assert 3 <= sandbox.control.counters()["by_kind"]["mi"] <= 3 * len(asked)
    held = [v for v in finished if "held_back_by" in v.platform]
    assert {v.diagnosis for v in held} == {"identity_unavailable"}
    assert {v.results["graph"]["token"] for v in held} == {"skipped"}
    assert PlatformAlert.objects.open().get().key == "identity_unavailable"
    assert set(Tenant.objects.values_list("status", flat=True)) == {Tenant.Status.CONSENT_REPORTED}

    sandbox.control.clear_faults()
    sandbox.control.reset_counters()
    codes = [str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code) for t in tenants]
    again = run_batch(codes[:1] + codes[1:2], concurrency=4)

    assert [v.outcome for v in again] == [Outcome.VERIFIED, Outcome.NO_ACCESS]
    assert not PlatformAlert.objects.open().exists()


def test_it_asks_the_identity_endpoint_again_once_it_is_back(sandbox, verified_northwind, verify):
    # azure-identity's credential gives up on an identity endpoint that failed once; the
    # portal must not: the next verification after the outage works without a restart.
    sandbox.control.add_fault(target="mi", status=503)
    identity.forget_assertion()
    assert verify(verified_northwind).outcome == Outcome.PLATFORM_ERROR
    sandbox.control.clear_faults()

    assert verify(verified_northwind).outcome == Outcome.VERIFIED
    assert not PlatformAlert.objects.open().exists()
