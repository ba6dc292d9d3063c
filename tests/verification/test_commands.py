"""manage.py verify_tenants and manage.py doctor."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from tenants.models import PlatformAlert, Tenant, Verification
from tests.conftest import (
    ADATUM,
    HOME_TENANT,
    LITWARE_LOCAL_APP,
    MANAGED_IDENTITY_CLIENT_ID,
    MANAGED_IDENTITY_OBJECT_ID,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
)


def _out(capsys) -> str:
    return capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_verify_tenants_runs_the_named_tenants_and_prints_a_table(
    sandbox, consent, make_tenant, capsys
):
    consent(NORTHWIND)
    make_tenant(NORTHWIND)
    make_tenant(ADATUM)

    with pytest.raises(SystemExit) as exited:
        call_command("verify_tenants", NORTHWIND, ADATUM)

    assert exited.value.code == 1  # not every tenant verified: a cron job can tell
    lines = [re.split(r"\s{2,}", line) for line in _out(capsys).splitlines()]
    assert lines[0] == ["TENANT", "NAME", "OUTCOME", "DIAGNOSIS", "STATUS", "SECONDS"]
    assert lines[1][:5] == [
        NORTHWIND,
        "Northwind Traders",
        "Verified",
        "Access verified",
        "Verified",
    ]
    assert lines[2][:5] == [
        ADATUM,
        "-",
        "No access",
        "App not consented in the tenant",
        "No access",
    ]
    assert lines[3] == ["2 tenants: 1 verified, 1 no access"]
    assert set(Verification.objects.values_list("trigger", flat=True)) == {"cli"}


@pytest.mark.django_db(transaction=True)
def test_verify_tenants_all_skips_offboarded_tenants(sandbox, consent, make_tenant, capsys):
    consent(NORTHWIND)
    make_tenant(NORTHWIND)
    make_tenant(TAILSPIN, status=Tenant.Status.OFFBOARDED)

    call_command("verify_tenants", "--all")

    out = _out(capsys)
    assert NORTHWIND in out
    assert TAILSPIN not in out
    assert out.rstrip().endswith("1 tenant: 1 verified")


@pytest.mark.django_db(transaction=True)
def test_verify_tenants_enqueue_only_queues(make_tenant, capsys):
    make_tenant(NORTHWIND)

    call_command("verify_tenants", "--all", "--enqueue")

    assert f"{NORTHWIND}  queued" in _out(capsys)
    assert Verification.objects.get().state == Verification.State.QUEUED
    assert DBTaskResult.objects.filter(task_path="tenants.tasks.verify_tenant").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name tenant ids, or use --all"),
        ((NORTHWIND, "--all"), "name tenant ids, or use --all"),
        (("not-a-guid\r\nx",), "not a tenant id: not-a-guid\\r\\nx"),
        ((TAILSPIN,), f"unknown tenant: {TAILSPIN}"),
        ((TAILSPIN, ADATUM), f"unknown tenants: {TAILSPIN}, {ADATUM}"),
    ],
)
def test_verify_tenants_refuses_bad_arguments(make_tenant, args, message):
    make_tenant(NORTHWIND)

    with pytest.raises(CommandError) as raised:
        call_command("verify_tenants", *args)

    assert message in str(raised.value)
    assert raised.value.returncode == 2
    assert not Verification.objects.exists()


def test_verify_tenants_usage_message_says_what_to_type(make_tenant):
    with pytest.raises(CommandError) as raised:
        call_command("verify_tenants")
    assert "manage.py verify_tenants --all" in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_verify_tenants_json_and_exit_zero_when_all_verified(sandbox, consent, make_tenant, capsys):
    consent(NORTHWIND)
    make_tenant(NORTHWIND)

    call_command("verify_tenants", "--all", "--json")  # no SystemExit: exit status 0

    document = json.loads(_out(capsys))
    assert document["exit_code"] == 0
    [tenant] = document["tenants"]
    assert tenant["tenant_id"] == NORTHWIND
    assert (tenant["outcome"], tenant["status"], tenant["stale"]) == ("verified", "verified", False)
    assert tenant["diagnosis"] == "verified"


@pytest.mark.django_db(transaction=True)
def test_verify_tenants_exits_3_and_says_statuses_are_last_known_on_a_platform_error(
    sandbox, consent, make_tenant, capsys
):
    consent(NORTHWIND)
    make_tenant(NORTHWIND, status=Tenant.Status.VERIFIED)
    sandbox.control.add_fault(target="mi", status=503)

    with pytest.raises(SystemExit) as exited:
        call_command("verify_tenants", "--all")

    assert exited.value.code == 3
    out = _out(capsys)
    assert "Platform error" in out
    assert "the statuses above are the last ones known" in out
    assert "manage.py doctor" in out
    assert Tenant.objects.get().status == Tenant.Status.VERIFIED


def test_doctor_passes_on_a_correct_home_side(sandbox, db, capsys):
    PlatformAlert.raise_alert("fic_subject_mismatch", "Federated credential: wrong subject")

    call_command("doctor")

    out = _out(capsys)
    assert f"sub = {MANAGED_IDENTITY_OBJECT_ID}" in out
    assert f"azp = {MANAGED_IDENTITY_CLIENT_ID}" in out
    assert f"tid = {HOME_TENANT}" in out
    assert "the federated credential matches" in out
    assert "ok    ENTRA_APP_DISPLAY_NAME = 'Fabrikam MSSP Portal'" in out
    assert "ok    Graph permissions of the staff re-check granted in the home tenant" in out
    assert "doctor: the home side is ready." in out
    assert not PlatformAlert.objects.open().exists()


def test_doctor_fails_without_the_graph_permissions_of_the_staff_re_check(sandbox, db, capsys):
    sandbox.control.set_roles(
        HOME_TENANT, {"graph": ["Organization.Read.All", "User.Read.All"]}, application=PORTAL_APP
    )

    with pytest.raises(SystemExit) as exited:
        call_command("doctor")

    assert exited.value.code == 1
    out = _out(capsys)
    assert (
        "FAIL  the portal's Graph token in the home tenant lacks Application.Read.All, "
        "GroupMember.Read.All: staff sessions end at their first role re-check" in out
    )
    assert "to the portal's service principal in the home tenant only" in out


def test_doctor_prints_the_federated_credential_that_must_exist(sandbox, capsys):
    sandbox.control.update_application(
        PORTAL_APP,
        federated_credentials=[
            {
                "issuer": f"{{authority}}/{HOME_TENANT}/v2.0",
                "subject": MANAGED_IDENTITY_CLIENT_ID,  # the client id, not the object id
                "audiences": ["api://AzureADTokenExchange"],
            }
        ],
    )

    with pytest.raises(SystemExit) as exited:
        call_command("doctor")

    assert exited.value.code == 1
    out = _out(capsys)
    assert "FAIL  Federated credential: wrong subject (AADSTS700213)" in out
    assert f"Issuer: {sandbox.authority}/{HOME_TENANT}/v2.0" in out
    assert f"Subject: {MANAGED_IDENTITY_OBJECT_ID}" in out
    assert "Audience: api://AzureADTokenExchange" in out


def test_doctor_fails_when_the_identity_is_unreachable(sandbox, capsys):
    sandbox.control.add_fault(target="mi", status=503)

    with pytest.raises(SystemExit) as exited:
        call_command("doctor")

    assert exited.value.code == 1
    out = _out(capsys)
    assert "FAIL  no token from the managed identity" in out
    assert out.splitlines()[-1] == (
        "doctor: 1 problem found on the home side; fix it and run doctor again."
    )


def test_doctor_fails_on_broken_settings_before_calling_anything(sandbox, settings, capsys):
    settings.ENTRA_APP_CLIENT_ID = "portal-app"
    sandbox.control.reset_counters()

    with pytest.raises(SystemExit):
        call_command("doctor")

    assert "FAIL  ENTRA_APP_CLIENT_ID: 'portal-app' is not a GUID" in _out(capsys)
    assert sandbox.control.counters()["total"] == 0


def test_doctor_reads_the_name_entra_shows_and_fails_on_another(sandbox, settings, db, capsys):
    settings.ENTRA_APP_DISPLAY_NAME = "Fabrikam Security"  # MSSP_NAME, not the app's name

    with pytest.raises(SystemExit) as exited:
        call_command("doctor")

    assert exited.value.code == 1
    out = _out(capsys)
    assert (
        "FAIL  ENTRA_APP_DISPLAY_NAME = 'Fabrikam Security', but Entra shows customers "
        "'Fabrikam MSSP Portal'"
    ) in out


def test_doctor_asks_for_the_display_name_when_unset(sandbox, settings, db, capsys):
    settings.ENTRA_APP_DISPLAY_NAME = ""

    with pytest.raises(SystemExit):
        call_command("doctor")

    assert "ENTRA_APP_DISPLAY_NAME is not set: set it to 'Fabrikam MSSP Portal'" in _out(capsys)


def _doctor_with_the_customer_side_app(settings, capsys) -> str:
    settings.ENTRA_APP_CLIENT_ID = LITWARE_LOCAL_APP  # the README's Litware recipe
    with pytest.raises(SystemExit) as exited:
        call_command("doctor")
    assert exited.value.code == 1
    return _out(capsys)


def test_doctor_on_the_wrong_direction_app_names_the_home_app_not_the_customer_one(
    sandbox, settings, db, capsys
):
    out = _doctor_with_the_customer_side_app(settings, capsys)

    assert "FAIL  Federated credential on an app in another tenant (AADSTS700236)" in out
    assert f"ENTRA_APP_CLIENT_ID is {LITWARE_LOCAL_APP}, an app registered outside the home" in out
    assert "'Multiple organizations'" in out
    # Never: a credential on the customer's app "in the home tenant", nor inviting the home tenant.
    assert f"app registration {LITWARE_LOCAL_APP}" not in out
    assert f"invitation for tenant {HOME_TENANT}" not in out
    assert "consent link again" not in out
    assert f"Subject: {MANAGED_IDENTITY_OBJECT_ID}" in out
    assert out.splitlines()[-1] == (
        "doctor: 1 problem found on the home side; fix it and run doctor again."
    )


def test_doctor_names_the_app_that_last_verified_a_tenant(
    sandbox, settings, consent, make_tenant, verify, capsys
):
    consent(NORTHWIND)
    assert verify(make_tenant(NORTHWIND)).outcome == Verification.Outcome.VERIFIED

    out = _doctor_with_the_customer_side_app(settings, capsys)

    assert f"Set ENTRA_APP_CLIENT_ID to {PORTAL_APP}, the MSSP's multi-tenant app" in out
    assert (
        f"In the home tenant {HOME_TENANT}, app registration {PORTAL_APP} → Certificates"
    ) in out
