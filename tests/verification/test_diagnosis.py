"""The diagnosis catalogue: every code of the facts file, explanations with concrete values,
unknown codes without a crash, and customer texts without internals."""

from __future__ import annotations

import pytest

from tenants.models import Tenant, Verification
from tenants.verification import classify, diagnosis
from tests.conftest import NORTHWIND

Outcome = Verification.Outcome

# Every AADSTS code in reference/entra-protocol-facts.md §5 and §8.
FACTS_CODES = {
    700016: "not_consented",
    7000229: "not_consented",
    70021: "fic_mismatch",
    700211: "fic_issuer_mismatch",
    700212: "fic_audience_mismatch",
    700213: "fic_subject_mismatch",
    700222: "federation_not_allowed",
    700236: "fic_wrong_direction",
    70025: "fic_missing",
    700024: "assertion_time_invalid",
    7000215: "client_secret_rejected",
    700027: "assertion_invalid",
    50013: "assertion_invalid",
    65001: "consent_required",
    500011: "resource_not_provisioned",
    90002: "tenant_not_found",
    7000112: "app_disabled",
    70011: "invalid_scope",
    1100000: "entra_object_not_found",
    90055: "throttled",
    50196: "throttled",
}


def _verification(tenant: Tenant, key: str, **fields) -> Verification:
    return Verification(
        tenant=tenant,
        trigger=Verification.Trigger.MANUAL,
        state=Verification.State.DONE,
        outcome=fields.pop("outcome", diagnosis.get(key).outcome),
        diagnosis=key,
        **fields,
    )


@pytest.fixture
def tenant(db) -> Tenant:
    return Tenant.objects.create(
        tenant_id=NORTHWIND, cloud="sandbox", access_profile="full-soc", display_name="Northwind"
    )


@pytest.mark.parametrize(("code", "key"), sorted(FACTS_CODES.items()))
def test_every_code_of_the_facts_file_is_catalogued(code, key):
    assert diagnosis.BY_CODE[code] == key
    entry = diagnosis.get(key)
    assert entry.title and entry.meaning
    assert code in entry.codes


@pytest.mark.parametrize("key", sorted(diagnosis.CATALOGUE))
def test_every_entry_explains_itself_to_operator_and_customer(tenant, key):
    explanation = diagnosis.describe(_verification(tenant, key, error_code="AADSTS1"))

    assert explanation.key == key
    assert explanation.title and explanation.meaning
    assert explanation.customer_text
    if diagnosis.get(key).outcome not in (Outcome.VERIFIED, Outcome.CANCELLED):
        assert explanation.remediation, key
    # Plain words for the customer: none of the MSSP's internals.
    for internal in ("AADSTS", "federated", "FIC", "assertion", "token", "manage.py"):
        assert internal not in explanation.customer_text, (key, internal)


def test_the_token_error_classification_ignores_the_description_and_falls_back_on_error():
    assert classify.token_error("unauthorized_client", 400, 700016) == (
        "not_consented",
        Outcome.NO_ACCESS,
    )
    # Unknown codes: "unclassified", with the outcome their OAuth error family implies.
    assert classify.token_error("invalid_client", 401, 7999999) == (
        "unclassified",
        Outcome.PLATFORM_ERROR,
    )
    assert classify.token_error("invalid_tenant", 400, 9999999) == (
        "unclassified",
        Outcome.NO_ACCESS,
    )
    assert classify.token_error("made_up", 400, None) == ("unclassified", Outcome.INCOMPLETE)
    # The status wins over any code: 429 and 5xx are transient.
    assert classify.token_error("invalid_client", 429, 700016) == ("throttled", Outcome.TRANSIENT)
    assert classify.token_error("", 502, None) == ("entra_unavailable", Outcome.TRANSIENT)


def test_it_shows_an_unknown_code_without_crashing(tenant):
    verification = _verification(
        tenant,
        "no_such_key",
        outcome=Outcome.INCOMPLETE,
        error_code="AADSTS9999999",
        results={"graph": "garbage", "mde": {"diagnosis": "also_unknown", "probe": "x"}},
        platform={"assertion": "garbage"},
    )

    explanation = diagnosis.describe(verification)

    assert explanation.key == "unclassified"
    assert explanation.title == "Unclassified error: AADSTS9999999"
    assert any("AADSTS9999999" in line for line in explanation.remediation)
    assert diagnosis.get("no_such_key").key == "unclassified"


def test_it_offers_the_consent_link_its_caller_gives_as_the_one_to_send_again(tenant):
    link = "https://portal.example/consent/invite/0b5e7c1a-8d2f-4e61-9a3c-7f4b2d1e6c58/"

    explanation = diagnosis.describe(_verification(tenant, "not_consented"), consent_link=link)

    assert any(
        f"Send the administrator of tenant {NORTHWIND} this consent link again: {link}" in line
        for line in explanation.remediation
    )


def test_without_an_open_invitation_it_says_to_create_one(tenant):
    explanation = diagnosis.describe(_verification(tenant, "not_consented"))

    assert any("Create a new consent invitation" in line for line in explanation.remediation)


def test_it_lists_what_works_and_every_step_left_for_the_customer(tenant):
    verification = _verification(
        tenant,
        "resource_not_provisioned",
        results={
            "graph": {"diagnosis": "verified"},
            "defender": {"diagnosis": "resource_not_provisioned"},
            "arm": {"diagnosis": "arm_no_subscriptions"},
        },
    )

    explanation = diagnosis.describe(verification)

    assert explanation.working == ["Microsoft Graph"]
    assert len(explanation.customer_steps) == 2
    assert "Microsoft Defender XDR is not available" in explanation.customer_steps[0]
    assert "\u201cReader\u201d" in explanation.customer_steps[1]
