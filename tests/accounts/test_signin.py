"""Staff sign-in with Entra (msal, auth code + PKCE) against the sandbox: who gets in, with
which permissions, and that a forged, replayed or tampered response gets nobody in."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts import entra, roles
from accounts.models import StaffIdentity
from accounts.views import FLOW_KEY
from audit.models import AuditEvent
from tests.conftest import HOME_TENANT, NORTHWIND
from tests.personas import make_staff, sandbox_redirect

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

ADMIN = "admin@fabrikam-mssp.example"
OPERATOR = "operator@fabrikam-mssp.example"
VISITOR = "visitor@fabrikam-mssp.example"
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+")


def signed_in_user(client: Client) -> object | None:
    user_id = client.session.get(SESSION_KEY)
    return get_user_model().objects.filter(pk=user_id).first() if user_id else None


def query_of(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def with_query(path: str, **changes: str) -> str:
    params = query_of(path)
    params.update(changes)
    return urlsplit(path).path + "?" + urlencode(params)


def refusals() -> list[dict]:
    return list(
        AuditEvent.objects.filter(action="user.sign_in_refused", outcome="denied").values(
            "actor", "detail"
        )
    )


@pytest.mark.django_db
def test_it_signs_an_admin_in_with_admin_permissions(entra):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    before = client.session.session_key
    response = client.get(callback)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:dashboard")
    user = signed_in_user(client)
    assert user is not None and user.get_username() == ADMIN
    assert user.has_perm(roles.ADMINISTER) and user.has_perm(roles.OPERATE)
    # Entra users never get into the Django admin.
    assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
    identity = StaffIdentity.objects.get(user=user)
    assert str(identity.tenant_id) == HOME_TENANT
    assert identity.roles == [roles.ADMIN_ROLE]
    # The session key changed at sign-in, and the pre-sign-in session is gone from the store.
    assert client.session.session_key != before
    assert not Session.objects.filter(session_key=before).exists()
    assert FLOW_KEY not in client.session
    assert client.get(reverse("console:invitations")).status_code == 200
    event = AuditEvent.objects.get(action="user.signed_in", outcome="success")
    assert (event.actor, event.detail["method"], event.detail["roles"]) == (
        ADMIN,
        "entra",
        roles.ADMIN_ROLE,
    )


@pytest.mark.django_db
def test_it_signs_an_operator_in_without_admin_permissions(entra):
    client = Client()
    client.get(sandbox_redirect(client, OPERATOR))
    user = signed_in_user(client)
    assert user.get_username() == OPERATOR
    assert user.has_perm(roles.OPERATE)
    assert not user.has_perm(roles.ADMINISTER)
    assert client.get(reverse("console:dashboard")).status_code == 200
    assert client.get(reverse("console:invitations")).status_code == 403


@pytest.mark.django_db
def test_it_maps_roles_again_on_every_sign_in(entra):
    # A user the portal knew as an admin comes back as an operator: groups follow the token.
    client = Client()
    client.get(sandbox_redirect(client, OPERATOR))
    user = signed_in_user(client)
    roles.apply(user, [roles.ADMIN_ROLE])
    client = Client()
    client.get(sandbox_redirect(client, OPERATOR))
    user = get_user_model().objects.get(pk=user.pk)
    assert not user.has_perm(roles.ADMINISTER)
    assert [g.name for g in user.groups.all()] == ["Portal operators"]
    assert get_user_model().objects.filter(username=OPERATOR).count() == 1


@pytest.mark.django_db
def test_it_refuses_a_user_without_a_role(entra):
    client = Client()
    response = client.get(sandbox_redirect(client, VISITOR))
    assert response.status_code == 403
    assert "no role in the portal" in response.content.decode()
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(username=VISITOR).exists()
    assert refusals() == [
        {"actor": VISITOR, "detail": {"method": "entra", "reason": "no_role", "tid": HOME_TENANT}}
    ]
    assert client.get(reverse("console:dashboard")).status_code == 302  # to the sign-in page


@pytest.mark.django_db
@pytest.mark.parametrize("upn", ["admin@northwind.example", "user@northwind.example"])
def test_it_refuses_a_user_of_another_tenant(entra, upn):
    # The app is multi-tenant, so a customer's user can sign in to it at /organizations.
    # The portal asks Entra for its home tenant only, and that tenant does not redeem a
    # code another tenant issued.
    client = Client()
    response = client.get(sandbox_redirect(client, upn, authorize_tenant="organizations"))
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(username=upn).exists()
    assert [r["detail"]["reason"] for r in refusals()] == ["entra_invalid_grant"]


def test_it_refuses_claims_of_another_tenant_even_with_a_portal_role(settings):
    # What stops a customer's user if Entra did answer for them (an app role of the same
    # name in their tenant, a multi-tenant authority): the tid claim (plan C3).
    claims = {
        "tid": NORTHWIND,
        "oid": "0b5e6f9a-1c2d-4e3f-8a7b-6c5d4e3f2a1b",
        "preferred_username": "admin@northwind.example",
        "roles": [roles.ADMIN_ROLE],
    }
    with pytest.raises(entra.SignInRefused) as refused:
        entra._check_claims(claims)
    assert refused.value.reason == "wrong_tenant"
    assert entra._check_claims({**claims, "tid": HOME_TENANT}).roles == [roles.ADMIN_ROLE]


@pytest.mark.django_db
def test_it_shows_the_wrong_tenant_refusal_in_plain_words(client):
    from django.test import RequestFactory

    from accounts.views import _refuse

    request = RequestFactory().get("/accounts/callback/")
    response = _refuse(request, "wrong_tenant", upn="admin@northwind.example", tenant_id=NORTHWIND)
    assert response.status_code == 403
    assert "Accounts of other organisations" in response.content.decode()
    assert refusals()[0]["detail"]["tid"] == NORTHWIND


# --- Forged and replayed responses (plan C4) -----------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_tampered_state(entra):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    response = client.get(with_query(callback, state="x" * 22))
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert [r["detail"]["reason"] for r in refusals()] == ["state_mismatch"]
    # The flow was used up by the failed attempt: the genuine response is refused too.
    assert client.get(callback).status_code == 400
    assert signed_in_user(client) is None


@pytest.mark.django_db
def test_it_refuses_a_response_in_a_browser_that_started_no_sign_in(entra):
    # Login CSRF: an attacker's own valid code planted in the victim's browser.
    attacker = Client()
    callback = sandbox_redirect(attacker, ADMIN)
    victim = Client()
    response = victim.get(callback)
    assert response.status_code == 400
    assert signed_in_user(victim) is None
    assert [r["detail"]["reason"] for r in refusals()] == ["no_flow"]


@pytest.mark.django_db
def test_it_refuses_a_code_used_once_already(entra):
    first = Client()
    used = sandbox_redirect(first, ADMIN)
    assert first.get(used).status_code == 302
    # Another browser starts its own sign-in and is handed the used code with its own state.
    second = Client()
    own = sandbox_redirect(second, OPERATOR)
    replay = with_query(own, code=query_of(used)["code"])
    response = second.get(replay)
    assert response.status_code == 403
    assert signed_in_user(second) is None
    assert [r["detail"]["reason"] for r in refusals()] == ["entra_invalid_grant"]


@pytest.mark.django_db
def test_it_refuses_a_replay_of_the_whole_response(entra):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    assert client.get(callback).status_code == 302
    client.post(reverse("accounts:logout"))
    assert client.get(callback).status_code == 400
    assert signed_in_user(client) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("verifier", "reason"), [("altered", "entra_invalid_grant"), ("missing", "no_flow")]
)
def test_it_refuses_a_flow_without_its_pkce_verifier(entra, verifier, reason):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    session = client.session
    flow = session[FLOW_KEY]
    if verifier == "altered":
        flow["code_verifier"] = "A" * 43
    else:
        del flow["code_verifier"]
    session[FLOW_KEY] = flow
    session.save()
    response = client.get(callback)
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(username=ADMIN).exists()
    assert [r["detail"]["reason"] for r in refusals()] == [reason]


@pytest.mark.django_db
def test_it_names_only_known_entra_errors(entra):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    state = query_of(callback)["state"]
    forged = (
        reverse("accounts:callback")
        + "?"
        + urlencode(
            {
                "error": "<script>x</script>",
                "error_description": "AADSTS50105 <b>pwned</b>",
                "state": state,
            }
        )
    )
    response = client.get(forged)
    body = response.content.decode()
    assert response.status_code == 403
    assert "<script>x</script>" not in body and "pwned" not in body
    assert [r["detail"]["reason"] for r in refusals()] == ["entra_unknown"]


@pytest.mark.django_db
def test_it_refuses_repeated_parameters(entra):
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    response = client.get(callback + "&state=other")
    assert response.status_code == 400
    assert signed_in_user(client) is None


# --- No token anywhere after sign-in (plan D3) -----------------------------------------------


@pytest.mark.django_db
def test_it_keeps_no_token_or_code_after_sign_in(entra):
    issued_before = set(entra.control.issued_tokens())
    client = Client()
    callback = sandbox_redirect(client, ADMIN)
    code = query_of(callback)["code"]
    response = client.get(callback, follow=True)
    assert response.status_code == 200
    issued = set(entra.control.issued_tokens()) - issued_before
    assert issued  # the sign-in did make Entra issue tokens: the checks below mean something
    secrets = [code, *issued]

    stored = " ".join(
        [s.session_data for s in Session.objects.all()]
        + [str(s.get_decoded()) for s in Session.objects.all()]
    )
    cookies = " ".join(f"{c.key}={c.value}" for c in client.cookies.values())
    pages = [response.content.decode()] + [
        client.get(reverse(name)).content.decode()
        for name in ("console:dashboard", "accounts:tokens", "console:audit_log")
    ]
    audit = " ".join(str(v) for v in AuditEvent.objects.values_list("actor", "detail"))
    for where, text in [("session store", stored), ("cookies", cookies), ("audit", audit)] + [
        (f"page {i}", page) for i, page in enumerate(pages)
    ]:
        assert not any(secret in text for secret in secrets), where
        assert not JWT.search(text), where
    assert FLOW_KEY not in client.session


@pytest.mark.django_db
def test_it_refuses_a_local_account_name_taken_by_entra(entra):
    # A password account named like an Entra user is never merged into the Entra sign-in.
    local = get_user_model().objects.create_user(ADMIN, password="x" * 20)
    client = Client()
    response = client.get(sandbox_redirect(client, ADMIN))
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert not StaffIdentity.objects.filter(user=local).exists()


@pytest.mark.django_db
def test_it_refuses_a_new_entra_user_whose_name_another_user_holds(entra):
    # The persona has a random object id: to Entra, the same name is now someone else
    # (a UPN reassigned). Users are found by object id, never merged by name.
    make_staff(OPERATOR, [roles.OPERATOR_ROLE])
    client = Client()
    response = client.get(sandbox_redirect(client, OPERATOR))
    assert response.status_code == 403
    assert [r["detail"]["reason"] for r in refusals()] == ["account_conflict"]
