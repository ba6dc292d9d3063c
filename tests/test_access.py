"""Who may reach what: every URL pattern of the URLconf, requested by every persona.

The walker reads `get_resolver().url_patterns`, so a view added without an entry in ACCESS
fails the suite: whoever adds a view decides here who may reach it. The Django admin is the
one namespace ruled as a whole (AdminSiteGateMiddleware keeps all of it to superusers), and
every one of its patterns is still requested.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import pytest
from django.conf import settings
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from accounts.models import ApiToken, LoginFailure
from audit.models import AuditEvent
from consent.models import Campaign
from notifications.models import Delivery, Destination, Event
from tenants.models import Tenant, TenantGroup, Verification
from tests.personas import make_staff, make_tenant, signed_in_client


class Access(Enum):
    PUBLIC = "anyone, signed in or not"
    OPERATE = "operators and admins"
    ADMINISTER = "admins only"
    MONITOR = "operators, admins, or an API token (JSON 401/403 otherwise)"
    SUPERUSER = "local superusers only (Django admin)"


GET, POST = "GET", "POST"
BOTH = frozenset({GET, POST})

# pattern name -> (who, methods the view accepts). Everything else answers 405.
ACCESS: dict[str, tuple[Access, frozenset[str]]] = {
    # The customer's side of onboarding: anonymous by design.
    "consent:invitation": (Access.PUBLIC, frozenset({GET})),
    "consent:start": (Access.PUBLIC, frozenset({POST})),
    "consent:callback": (Access.PUBLIC, frozenset({GET})),
    "consent:landing": (Access.PUBLIC, frozenset({GET})),
    # Signing in and out.
    "accounts:login": (Access.PUBLIC, frozenset({GET})),
    "accounts:start": (Access.PUBLIC, frozenset({POST})),
    "accounts:callback": (Access.PUBLIC, frozenset({GET})),
    "accounts:break_glass": (Access.PUBLIC, BOTH),
    "accounts:logout": (Access.PUBLIC, frozenset({POST})),
    # Reading the console.
    "console:dashboard": (Access.OPERATE, frozenset({GET})),
    "console:dashboard_live": (Access.OPERATE, frozenset({GET})),
    "console:export_csv": (Access.OPERATE, frozenset({GET})),
    "console:detail": (Access.OPERATE, frozenset({GET})),
    "console:status_json": (Access.MONITOR, frozenset({GET})),
    # Operators act on the tenants of their scope, and hold API tokens of their own.
    "console:reverify": (Access.OPERATE, frozenset({POST})),
    "console:reverify_selected": (Access.OPERATE, frozenset({POST})),
    "accounts:tokens": (Access.OPERATE, frozenset({GET})),
    "accounts:token_create": (Access.OPERATE, frozenset({POST})),
    "accounts:token_revoke": (Access.OPERATE, BOTH),
    # Acting on the fleet, its groups and invitations.
    "console:reverify_all": (Access.ADMINISTER, BOTH),
    "console:offboard": (Access.ADMINISTER, BOTH),
    "console:invite": (Access.ADMINISTER, frozenset({POST})),
    "console:tenant_profile": (Access.ADMINISTER, BOTH),
    "console:tenant_groups": (Access.ADMINISTER, frozenset({POST})),
    "console:assign_selected": (Access.ADMINISTER, frozenset({POST})),
    "console:groups": (Access.ADMINISTER, frozenset({GET})),
    "console:group_create": (Access.ADMINISTER, BOTH),
    "console:group": (Access.ADMINISTER, BOTH),
    "console:invitations": (Access.ADMINISTER, frozenset({GET})),
    "console:invitation_create": (Access.ADMINISTER, BOTH),
    "console:invitation_import": (Access.ADMINISTER, BOTH),
    "console:invitation_import_preview": (Access.ADMINISTER, BOTH),
    "console:invitation": (Access.ADMINISTER, frozenset({GET})),
    "console:invitation_revoke": (Access.ADMINISTER, BOTH),
    "console:invitation_email": (Access.ADMINISTER, frozenset({POST})),
    "console:invitation_export": (Access.ADMINISTER, frozenset({GET})),
    "console:invitations_email": (Access.ADMINISTER, frozenset({POST})),
    "console:audit_log": (Access.ADMINISTER, frozenset({GET})),
    "console:audit_log_export": (Access.ADMINISTER, frozenset({GET})),
    "console:campaigns": (Access.ADMINISTER, frozenset({GET})),
    "console:campaign_start": (Access.ADMINISTER, frozenset({POST})),
    "console:campaign": (Access.ADMINISTER, frozenset({GET})),
    "console:campaign_remind": (Access.ADMINISTER, frozenset({POST})),
    "console:campaign_export": (Access.ADMINISTER, frozenset({GET})),
    "console:notifications": (Access.ADMINISTER, frozenset({GET})),
    "console:notification_create": (Access.ADMINISTER, BOTH),
    "console:notification_destination": (Access.ADMINISTER, frozenset({GET})),
    "console:notification_edit": (Access.ADMINISTER, BOTH),
    "console:notification_test": (Access.ADMINISTER, frozenset({POST})),
    "console:notification_toggle": (Access.ADMINISTER, frozenset({POST})),
    "console:notification_delete": (Access.ADMINISTER, BOTH),
    "console:notification_redeliver": (Access.ADMINISTER, frozenset({POST})),
}
# Every pattern under these namespaces, named or not, present or future.
NAMESPACE_ACCESS = {"admin": (Access.SUPERUSER, BOTH)}

# Who passes each rule.
ALLOWED = {
    Access.PUBLIC: {"anonymous", "outsider", "operator", "admin", "superuser"},
    Access.OPERATE: {"operator", "admin", "superuser"},
    Access.MONITOR: {"operator", "admin", "superuser"},
    Access.ADMINISTER: {"admin", "superuser"},
    Access.SUPERUSER: {"superuser"},
}
PERSONAS = ["anonymous", "outsider", "operator", "admin", "superuser"]


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name" (name "None" when the pattern has none)
    namespace: str
    template: str  # the pattern as written, for messages
    pattern: object


def _walk(patterns: list, prefix: str = "", namespaces: tuple[str, ...] = ()) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield Route(
                key=":".join((*namespaces, str(entry.name))),
                namespace=namespaces[0] if namespaces else "",
                template=prefix + str(entry.pattern),
                pattern=entry.pattern,
            )


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))


def rule_for(route: Route) -> tuple[Access, frozenset[str]] | None:
    if route.namespace in NAMESPACE_ACCESS:
        return NAMESPACE_ACCESS[route.namespace]
    return ACCESS.get(route.key)


_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


def _sample(converter: str, name: str, objects: dict[str, str]) -> str:
    if name in objects:
        return objects[name]
    return {"uuid": str(uuid.uuid4()), "int": "1", "path": "1", "slug": "sample"}.get(
        converter, "sample"
    )


def fill(template: str, objects: dict[str, str]) -> str:
    """A concrete path for a pattern: converters get sample values (objects that exist where
    `objects` names the parameter, random UUIDs otherwise)."""

    def route_param(match: re.Match[str]) -> str:
        return _sample(match["converter"] or "str", match["name"], objects)

    def regex_group(match: re.Match[str]) -> str:
        body = match["body"]
        if re.fullmatch(r"[\w|]+", body):
            return body.split("|")[0]  # an alternation of names: take the first
        return "sample"

    # Regex groups first: their (?P<name>…) would otherwise read as a route's <name>.
    path = _REGEX_GROUP.sub(regex_group, template)
    path = _ROUTE_PARAM.sub(route_param, path)
    return "/" + path.replace("^", "").replace("$", "")


@pytest.fixture
def clients(db, admin_user, operator_user, outsider_user, superuser) -> dict[str, object]:
    """A factory per persona: every request gets a fresh client, so a sign-out or a
    session change made by one request does not leak into the next."""
    users = {
        "outsider": outsider_user,
        "operator": operator_user,
        "admin": admin_user,
        "superuser": superuser,
    }

    def make(persona: str) -> Client:
        client = Client() if persona == "anonymous" else signed_in_client(users[persona])
        # A crash is a finding to list with the others, not the end of the walk.
        client.raise_request_exception = False
        return client

    return make


@pytest.fixture
def objects(db, admin_user, invitation) -> dict[str, str]:
    """Objects for the URL parameters, so allowed requests reach the view's real work."""
    tenant = make_tenant(status=Tenant.Status.VERIFIED, last_checked_at=timezone.now())
    Verification.objects.create(tenant=tenant, trigger=Verification.Trigger.CONSENT)
    token, _value = ApiToken.issue(name="Nagios", scope="status:read", created_by="admin")
    destination = Destination.objects.create(
        kind="email", name="SOC", target="soc@fabrikam.example", created_by="admin"
    )
    event = Event.objects.create(type="notification.test", data={})
    delivery = Delivery.objects.create(event=event, destination=destination, status="failed")
    group = TenantGroup.objects.create(name="EMEA")
    return {
        "tenant_code": str(tenant.code),
        "group_code": str(group.code),
        "invitation_code": str(invitation.code),
        "code": str(invitation.code),
        "token_code": str(token.code),
        "campaign_code": str(Campaign.objects.create(created_by="admin").code),
        "destination_code": str(destination.code),
        "delivery_code": str(delivery.code),
        "object_id": "1",
        "id": str(admin_user.pk),
    }


def is_login_redirect(response: object) -> bool:
    return response.status_code == 302 and response["Location"].startswith(
        reverse(settings.LOGIN_URL)
    )


def gate_refusals() -> int:
    return AuditEvent.objects.filter(action="admin_site.refused", outcome="denied").count()


def refused(persona: str, response: object) -> bool:
    if persona == "anonymous":
        return is_login_redirect(response) or response.status_code == 401
    return response.status_code in (401, 403)


def test_it_has_a_rule_for_every_url_pattern():
    routes = all_routes()
    missing = [f"{r.key} ({r.template})" for r in routes if rule_for(r) is None]
    assert not missing, f"URL patterns without an access rule in ACCESS: {missing}"
    # ... and no rule for a view that is gone (a stale table hides nothing, but lies).
    keys = {r.key for r in routes}
    assert set(ACCESS) <= keys, set(ACCESS) - keys


def test_it_walks_the_whole_urlconf():
    routes = all_routes()
    # A walker that silently stopped descending would pass everything.
    assert len(routes) > 50
    assert {"consent", "accounts", "console", "admin"} <= {r.namespace for r in routes}
    assert all(isinstance(r.pattern, RoutePattern | RegexPattern) for r in routes)


def test_it_fills_every_pattern_with_a_path_that_resolves(objects):
    from django.urls import resolve

    for route in all_routes():
        path = fill(route.template, objects)
        # ... to this very pattern, not to one before it (a catch-all, say).
        assert resolve(path).route == route.template.replace("^", ""), (route.key, path)


@pytest.mark.parametrize("persona", PERSONAS)
def test_it_lets_in_exactly_who_the_table_says(persona, clients, objects, sandbox):
    # The sandbox: "Sign in with Microsoft" really starts a sign-in, and answers 302, not 503.
    problems = []
    for route in all_routes():
        rule = rule_for(route)
        assert rule is not None, route.key
        access, methods = rule
        path = fill(route.template, objects)
        for method in (GET, POST):
            client = clients(persona)
            gate_refused = gate_refusals()
            response = client.get(path) if method == GET else client.post(path, {})
            status = response.status_code
            where = f"{method} {path} ({route.key}) as {persona}: {status}"
            if status >= 500:
                problems.append(f"{where} server error")
            elif access is Access.SUPERUSER and persona == "superuser":
                # Past the gate the admin answers for itself (its own 403 for read-only
                # models, 405 for its methods); the gate's refusals are audited. The admin's
                # own login page sends everyone to the portal's (throttled) sign-in.
                bounced = is_login_redirect(response) and route.key != "admin:login"
                if bounced or gate_refusals() != gate_refused:
                    problems.append(f"{where}, expected past the admin gate")
            elif method not in methods:
                if status != 405:
                    problems.append(f"{where}, expected 405")
            elif persona in ALLOWED[access]:
                # Signing out ends on the sign-in page: for a public view, that is no refusal.
                if status in (401, 403, 405) or (
                    access is not Access.PUBLIC and refused(persona, response)
                ):
                    problems.append(f"{where}, expected to be let in")
            elif not refused(persona, response):
                problems.append(f"{where}, expected a refusal")
    assert not problems, "\n".join(problems)


def test_it_refuses_operators_every_admin_action_with_403(clients, objects):
    actions = [key for key, (access, _m) in ACCESS.items() if access is Access.ADMINISTER]
    assert {
        "console:invitation_create",
        "console:invite",
        "console:invitation_revoke",
        "console:reverify_all",
        "console:offboard",
        "console:tenant_groups",
        "console:assign_selected",
        "console:group_create",
        "console:group",
    } <= set(actions)
    routes = {r.key: r for r in all_routes()}
    before = (
        ApiToken.objects.count(),
        Tenant.objects.active().count(),
        TenantGroup.objects.count(),
        TenantGroup.tenants.through.objects.count(),
    )
    for key in actions:
        path = fill(routes[key].template, objects)
        _access, methods = ACCESS[key]
        for method in methods:
            client = clients("operator")
            data = {
                "confirm": "on",
                "name": "x",
                "scope": "only",
                "tenant": objects["tenant_code"],
                "assign_group": objects["group_code"],
                "groups": objects["group_code"],
            }
            response = client.get(path) if method == GET else client.post(path, data)
            assert response.status_code == 403, (method, key)
    assert (
        ApiToken.objects.count(),
        Tenant.objects.active().count(),
        TenantGroup.objects.count(),
        TenantGroup.tenants.through.objects.count(),
    ) == before
    assert not Verification.objects.filter(trigger=Verification.Trigger.MANUAL).exists()


# --- CSRF and methods on admin actions (plan C5) --------------------------------------------

ADMIN_POSTS = sorted(
    key
    for key, (access, methods) in ACCESS.items()
    if access is Access.ADMINISTER and POST in methods
)


@pytest.fixture
def csrf_admin(admin_user) -> Client:
    """An admin whose browser enforces CSRF as a real one does, holding a CSRF cookie."""
    client = signed_in_client(admin_user)
    client.handler.enforce_csrf_checks = True
    client.cookies[settings.CSRF_COOKIE_NAME] = _get_new_csrf_string()
    return client


def _post_confirmed(client: Client, path: str, **extra: object) -> object:
    data = {"confirm": "on", "name": "x", "scope": "status:read", "expires_in_days": "1"}
    return client.post(path, data, **extra)


@pytest.mark.parametrize("key", ADMIN_POSTS)
def test_it_refuses_an_admin_post_without_a_csrf_token(key, csrf_admin, objects):
    path = fill(next(r.template for r in all_routes() if r.key == key), objects)
    events = AuditEvent.objects.exclude(action="access.denied").count()
    response = _post_confirmed(csrf_admin, path)
    assert response.status_code == 403
    # Nothing was done, so nothing to record but the refusal itself.
    assert AuditEvent.objects.exclude(action="access.denied").count() == events
    assert AuditEvent.objects.filter(action="access.denied", detail__path=path).count() == 1


@pytest.mark.parametrize("key", ADMIN_POSTS)
def test_it_refuses_an_admin_post_from_another_origin(key, csrf_admin, objects):
    path = fill(next(r.template for r in all_routes() if r.key == key), objects)
    token = csrf_admin.cookies[settings.CSRF_COOKIE_NAME].value
    events = AuditEvent.objects.exclude(action="access.denied").count()
    response = _post_confirmed(
        csrf_admin, path, HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 403
    assert AuditEvent.objects.exclude(action="access.denied").count() == events
    assert AuditEvent.objects.filter(action="access.denied", detail__path=path).count() == 1


@pytest.mark.parametrize("key", ADMIN_POSTS)
def test_it_accepts_the_same_post_with_token_and_own_origin(key, csrf_admin, objects):
    # The control for the two tests above: what refused them was the token and the origin.
    path = fill(next(r.template for r in all_routes() if r.key == key), objects)
    token = csrf_admin.cookies[settings.CSRF_COOKIE_NAME].value
    response = _post_confirmed(
        csrf_admin, path, HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code not in (403, 405)


@pytest.mark.parametrize(
    "key",
    ["console:reverify", "console:reverify_selected", "console:invite", "accounts:token_create"],
)
def test_it_answers_405_to_a_get_on_a_post_only_action(key, admin_client, objects):
    path = fill(next(r.template for r in all_routes() if r.key == key), objects)
    events = AuditEvent.objects.count()
    assert admin_client.get(path).status_code == 405
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("key", ["console:offboard", "console:reverify_all"])
def test_it_only_asks_for_confirmation_on_get(key, admin_client, objects):
    path = fill(next(r.template for r in all_routes() if r.key == key), objects)
    response = admin_client.get(path)
    assert response.status_code == 200
    assert not Tenant.objects.filter(status=Tenant.Status.OFFBOARDED).exists()
    assert not Verification.objects.filter(trigger=Verification.Trigger.MANUAL).exists()


# --- Unknown objects (plan C2) ---------------------------------------------------------------

TENANT_VIEWS = [
    "console:detail",
    "console:reverify",
    "console:offboard",
    "console:invite",
    "console:tenant_groups",
]


@pytest.mark.parametrize("name", TENANT_VIEWS)
def test_it_answers_404_for_a_tenant_that_does_not_exist(name, admin_client, objects):
    path = reverse(name, kwargs={"tenant_code": uuid.uuid4()})
    _access, methods = ACCESS[name]
    for method in methods:
        response = admin_client.get(path) if method == GET else _post_confirmed(admin_client, path)
        assert response.status_code == 404, method
    assert not Verification.objects.filter(trigger=Verification.Trigger.MANUAL).exists()


def test_it_answers_404_to_an_operator_for_an_unknown_tenant(operator_client):
    response = operator_client.get(reverse("console:detail", kwargs={"tenant_code": uuid.uuid4()}))
    assert response.status_code == 404


def test_it_does_not_find_a_tenant_by_its_entra_id_in_the_url(operator_client, objects):
    # URLs carry the portal's own code; the Entra tenant id is not a key into the console.
    tenant = Tenant.objects.get(code=objects["tenant_code"])
    path = reverse("console:detail", kwargs={"tenant_code": tenant.tenant_id})
    assert operator_client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("name", "kwarg"),
    [
        ("console:invitation", "invitation_code"),
        ("console:invitation_revoke", "invitation_code"),
        ("accounts:token_revoke", "token_code"),
        ("console:group", "group_code"),
    ],
)
def test_it_answers_404_for_other_unknown_objects(name, kwarg, admin_client):
    path = reverse(name, kwargs={kwarg: uuid.uuid4()})
    _access, methods = ACCESS[name]
    for method in methods:
        response = admin_client.get(path) if method == GET else _post_confirmed(admin_client, path)
        assert response.status_code == 404, method


def test_it_opens_the_django_admin_to_a_superuser(clients):
    assert clients("superuser").get("/admin/").status_code == 200


@pytest.mark.parametrize("persona", ["anonymous", "superuser"])
def test_it_replaces_the_admin_password_form_with_the_portal_sign_in(persona, clients):
    response = clients(persona).post("/admin/login/", {"username": "breakglass", "password": "x"})
    assert is_login_redirect(response)
    # No password was checked there, so the throttle counted nothing.
    assert not LoginFailure.objects.exists()


# --- Scoped operators (issue 11): out of scope is 404, never 403, and never counted -----------

EMEA_GROUP = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"  # SOC EMEA in the demo directory
CONTRACTORS_GROUP = "9d2a7c45-1e6b-4f83-a0d9-5c8e2b4f7a16"
AMERICAS_ROLE = "Portal.SOC.Americas"
# How each scoped persona is given its scope: (app roles, Entra groups). Each sees the
# in-scope tenant and never the hidden one.
SCOPED_PERSONAS = {
    "one group": (["Portal.Operator"], [EMEA_GROUP]),
    "two groups (union)": (["Portal.Operator", AMERICAS_ROLE], [EMEA_GROUP]),
    "all except": (["Portal.Operator"], [CONTRACTORS_GROUP]),
}
# Every string by which the out-of-scope tenant could show: no answer may contain one.
HIDDEN_MARKERS = ("Zulu Hidden Holdings", "zulu-hidden.example", "Zulu Contact")


@dataclass
class ScopedWorld:
    inside: Tenant
    hidden: Tenant
    operator: object
    objects_inside: dict[str, str]
    objects_hidden: dict[str, str]


@pytest.fixture(params=list(SCOPED_PERSONAS))
def scoped_world(request, db, admin_user) -> ScopedWorld:
    """A scoped operator (one group; two groups, by an Entra group and an app role; "all
    except" a group), beside a tenant outside their scope that has everything a page could
    show: history, audit events, an invitation, a contact."""
    from consent.models import Invitation

    now = timezone.now()
    inside = make_tenant(
        display_name="Alpha Inside", primary_domain="alpha.example", last_checked_at=now
    )
    hidden = make_tenant(
        display_name="Zulu Hidden Holdings",
        primary_domain="zulu-hidden.example",
        contact_name="Zulu Contact",
        status=Tenant.Status.NO_ACCESS,
        stale_since=now,
        last_checked_at=now,
    )
    for tenant in (inside, hidden):
        Verification.objects.create(
            tenant=tenant,
            trigger=Verification.Trigger.CONSENT,
            state=Verification.State.DONE,
            finished_at=now,
        )
        AuditEvent.objects.create(
            actor="admin",
            action="tenant.status_changed",
            tenant_id=tenant.tenant_id,
            outcome="success",
            detail={"name": tenant.display_name},
        )
    emea = TenantGroup.objects.create(name="EMEA", entra_group_ids=[EMEA_GROUP])
    emea.tenants.add(inside)
    TenantGroup.objects.create(
        name="Regulated", scope=TenantGroup.Scope.EXCEPT, entra_group_ids=[CONTRACTORS_GROUP]
    ).tenants.add(hidden)
    TenantGroup.objects.create(name="Americas", app_roles=[AMERICAS_ROLE]).tenants.add(
        make_tenant(display_name="Bravo Americas")
    )
    app_roles, entra_groups = SCOPED_PERSONAS[request.param]
    operator = make_staff("pod@fabrikam-mssp.example", app_roles, entra_groups=entra_groups)
    token, _value = ApiToken.issue(
        name="Pod monitor", scope="status:read", created_by="pod", owner=operator
    )
    invitations = {
        t: Invitation.objects.create(
            customer_name=t.display_name,
            expected_tenant_id=t.tenant_id,
            access_profile="defender-xdr-readonly",
            expires_at=now + timezone.timedelta(days=3),
            created_by="admin",
            tenant=t,
        )
        for t in (inside, hidden)
    }

    def objects_for(tenant: Tenant) -> dict[str, str]:
        return {
            "tenant_code": str(tenant.code),
            "invitation_code": str(invitations[tenant].code),
            "code": str(invitations[tenant].code),
            "token_code": str(token.code),
            "group_code": str(emea.code),
            "object_id": "1",
            "id": str(admin_user.pk),
        }

    return ScopedWorld(inside, hidden, operator, objects_for(inside), objects_for(hidden))


def _leaks(response: object) -> list[str]:
    if getattr(response, "streaming", False):
        body = b"".join(response.streaming_content).decode()
    else:
        body = response.content.decode(errors="replace")
    return [marker for marker in HIDDEN_MARKERS if marker in body]


def test_a_scoped_operator_gets_404_out_of_scope_and_the_answer_in_scope(scoped_world):
    """Every URL pattern, requested by an operator scoped to one tenant group: a route that
    names the out-of-scope tenant answers 404 (as an unknown one), the same route for the
    in-scope tenant answers as for any operator, and no answer names the hidden tenant."""
    world = scoped_world
    problems = []
    tenant_routes = 0
    for route in all_routes():
        access, methods = rule_for(route)
        if access in (Access.PUBLIC, Access.SUPERUSER):
            continue
        names_tenant = "<uuid:tenant_code>" in route.template
        tenant_routes += names_tenant
        for method in sorted(methods):
            for side, objects in (
                ("in scope", world.objects_inside),
                ("out of scope", world.objects_hidden),
            ):
                client = signed_in_client(world.operator)
                client.raise_request_exception = False
                path = fill(route.template, objects)
                data = {"tenant": [objects["tenant_code"]], "confirm": "on"}
                response = client.get(path) if method == GET else client.post(path, data)
                status = response.status_code
                where = f"{method} {path} ({route.key}, {side}): {status}"
                if access is Access.ADMINISTER:
                    # Refused for the role before any object is looked up: the same answer
                    # in and out of scope, so it tells nothing.
                    if status != 403:
                        problems.append(f"{where}, expected 403")
                elif names_tenant and side == "out of scope":
                    if status != 404:
                        problems.append(f"{where}, expected 404")
                elif status in (401, 403, 404, 405) or status >= 500:
                    problems.append(f"{where}, expected the operator's answer")
                leaks = _leaks(response)
                if leaks:
                    problems.append(f"{where} shows {leaks}")
    assert tenant_routes >= 5
    assert not problems, "\n".join(problems)
    # The POSTs naming the hidden tenant queued nothing for it.
    assert not world.hidden.verifications.filter(trigger=Verification.Trigger.MANUAL).exists()
    assert world.inside.verifications.filter(trigger=Verification.Trigger.MANUAL).exists()
