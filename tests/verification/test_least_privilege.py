"""Least privilege: roles customers' tokens carry that no access profile requires are
named on the tenant page and by `doctor` (a warning: the app asks every customer for
more than the MSSP uses)."""

from __future__ import annotations

from django.core.management import call_command
from django.urls import reverse

from tests.conftest import NORTHWIND, WOODGROVE
from tests.personas import make_staff, signed_in_client

EXTRA = {"graph": ["Organization.Read.All", "User.Read.All"], "defender": ["Incident.Read.All"]}


def test_it_names_roles_no_profile_requires(sandbox, consent, make_tenant, verify, capsys):
    consent(NORTHWIND, EXTRA)
    consent(WOODGROVE)
    northwind = make_tenant(NORTHWIND)
    woodgrove = make_tenant(WOODGROVE)
    verify(northwind)
    verify(woodgrove)
    operator = signed_in_client(make_staff("operator@fabrikam-mssp.example", ["Portal.Operator"]))

    page = operator.get(reverse("console:detail", args=[northwind.code])).content.decode()
    assert 'id="least-privilege"' in page
    assert "carry permissions that no access profile uses: Microsoft Graph" in page
    assert '<code class="perm">User.Read.All</code>' in page
    assert "remove them from the API permissions of the app registration" in page
    healthy = operator.get(reverse("console:detail", args=[woodgrove.code])).content.decode()
    assert 'id="least-privilege"' not in healthy

    call_command("doctor")
    out = capsys.readouterr().out
    assert "WARN  Microsoft Graph User.Read.All is in the tokens of 1 tenant" in out
    assert "no access profile uses it" in out
    assert "doctor: the home side is ready." in out  # a warning, not a failure


def test_doctor_says_ok_when_tokens_carry_only_what_profiles_need(
    sandbox, consent, make_tenant, verify, capsys
):
    consent(NORTHWIND)
    verify(make_tenant(NORTHWIND))
    call_command("doctor")
    out = capsys.readouterr().out
    assert "ok    customer tokens carry only permissions an access profile requires" in out
    assert "WARN" not in out
