"""The diagnosis catalogue: for every way a verification ends, what it means and what to do.

Each verification and each resource result carries a diagnosis key. `get(key)` gives the
catalogue entry; `describe(verification)` gives the explanation for one verification, with
the concrete values filled in: the federated credential the home tenant needs (from the
managed identity token's own claims), the consent link to send again, the missing
permissions, the missing licence. `customer_text` is what the customer's administrator reads
on the landing page: plain words, no internals.

Entra's error codes are hints (Microsoft says they can change); the classification that
produced a key is in `tenants.verification.classify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from django.conf import settings

from mssp_portal import clouds
from tenants.models import Tenant, Verification
from tenants.profiles import Requirement

Outcome = Verification.Outcome


@dataclass(frozen=True)
class Problem:
    """One resource's part of a verification, as the remediation needs it."""

    resource: str
    title: str
    key: str
    code: str = ""
    roles_missing: tuple[str, ...] = ()
    rbac_role: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Facts:
    """The concrete values remediation texts are written with."""

    tenant_id: str
    tenant_name: str
    mssp_name: str
    app_client_id: str
    home_tenant_id: str
    managed_identity_client_id: str
    fic_issuer: str
    fic_subject: str
    fic_audience: str
    # The name Entra shows for the app (ENTRA_APP_DISPLAY_NAME), "" when not configured.
    app_name: str
    # True when the issuer/subject come from the managed identity token itself.
    fic_from_token: bool
    assertion_window: str
    consent_link: str
    code: str
    loganalytics: dict[str, str] = field(default_factory=dict)
    cloud: str = ""
    verification_code: str = ""
    # The home tenant's multi-tenant app that last verified a tenant, when it is not the
    # app presented (found for AADSTS700236 only); "" when unknown.
    working_app_client_id: str = ""

    @property
    def home(self) -> bool:
        """True when the tenant checked is the MSSP's own home tenant (`manage.py doctor`)."""
        return self.tenant_id.lower() == self.home_tenant_id.lower()

    @property
    def app(self) -> str:
        """The app as an operator finds it in Entra: its name and its application id."""
        if self.app_name:
            return f"\u201c{self.app_name}\u201d (application id {self.app_client_id})"
        return f"application id {self.app_client_id}"


Texts = Callable[[Facts, Problem | None], list[str]]
Words = Callable[[Facts, Problem | None], str]


def _no_action(facts: Facts, problem: Problem | None) -> list[str]:
    return []


def _no_words(facts: Facts, problem: Problem | None) -> str:
    return ""


@dataclass(frozen=True)
class Diagnosis:
    key: str
    title: str
    meaning: str
    outcome: str
    codes: tuple[int, ...] = ()
    remediation: Texts = _no_action
    customer: Words = _no_words
    # The page where the customer does their step, when there is one.
    customer_link: Words = _no_words
    # What to do when the tenant is the home tenant itself (`manage.py doctor`'s exchange),
    # where a customer-side remedy would be wrong; None when `remediation` holds there too.
    home_remediation: Texts | None = None


@dataclass(frozen=True)
class Explanation:
    key: str
    outcome: str
    title: str
    meaning: str
    remediation: list[str]
    customer_text: str
    code: str = ""
    # For the customer's landing page: what their administrator must still do, one step
    # per item (customer_text joins them), and which services already work.
    customer_steps: list[str] = field(default_factory=list)
    working: list[str] = field(default_factory=list)
    # Where to do each step, when a page exists for it: step text → URL.
    customer_links: dict[str, str] = field(default_factory=dict)
    # True when a new admin consent fixes (part of) what was found; a re-consent offer is
    # shown only then (not for a missing licence, Azure role or a disabled app).
    reconsent_fixes: bool = False

    @property
    def customer_items(self) -> list[tuple[str, str]]:
        """Each step with the URL of the page where it is done ("" when none)."""
        return [(step, self.customer_links.get(step, "")) for step in self.customer_steps]


# What must be licensed in a tenant for a resource's service principal to exist there
# (AADSTS500011 names the resource that is missing).
LICENCES = {
    "graph": "a regular Microsoft Entra tenant (Microsoft Graph exists in every one)",
    "defender": "a Microsoft Defender XDR licence (Microsoft 365 E5 or E5 Security, or a "
    "Defender for Endpoint, Office 365, Identity or Cloud Apps plan), and the Microsoft "
    "Defender portal opened once by an administrator",
    "mde": "a Microsoft Defender for Endpoint licence (Plan 1 or Plan 2, or Microsoft 365 E5), "
    "and Defender for Endpoint set up once in the Microsoft Defender portal",
    "arm": "an Azure subscription in the tenant",
    "loganalytics": "an Azure subscription with Azure Monitor (a data collection rule) in the "
    "tenant",
}


def _reconsent(facts: Facts) -> str:
    if facts.consent_link:
        return (
            f"Send the administrator of tenant {facts.tenant_id} this consent link again: "
            f"{facts.consent_link}"
        )
    return (
        f"Create a new consent invitation for tenant {facts.tenant_id} and send it to the "
        "customer's administrator."
    )


def _fic(facts: Facts, app: str = "") -> list[str]:
    """The federated credential that must exist on the home tenant's app (`app`, by default
    the app presented)."""
    where = (
        f"In the home tenant {facts.home_tenant_id}, {app or 'app registration ' + facts.app}"
        " → Certificates & secrets → Federated credentials"
    )
    subject = facts.fic_subject or (
        f"the object (principal) id of managed identity {facts.managed_identity_client_id}"
    )
    source = (
        "values taken from the managed identity's own token"
        if facts.fic_from_token
        else "the managed identity's token could not be read; issuer from the configuration"
    )
    return [
        f"{where}: there must be a federated identity credential with exactly these values "
        f"({source}):",
        f"Issuer: {facts.fic_issuer}",
        f"Subject: {subject}",
        f"Audience: {facts.fic_audience}",
        "Entra saves a mistyped credential without complaint; compare character by character, "
        "then run `manage.py doctor`.",
    ]


def _missing_roles(facts: Facts, problem: Problem | None) -> list[str]:
    if problem is None:
        return [_reconsent(facts)]
    names = ", ".join(problem.roles_missing) or "the required permissions"
    return [
        f"{problem.title}: the token of {facts.app} in tenant {facts.tenant_id} has no "
        f"{names}. The permission was probably added to the app after the customer "
        "consented; consent must be granted again to include it.",
        f"Check that app registration {facts.app_client_id} in the home tenant "
        f"{facts.home_tenant_id} requests {names} ({problem.title}, application permission).",
        _reconsent(facts),
    ]


def _missing_rbac(facts: Facts, problem: Problem | None) -> list[str]:
    role = problem.rbac_role if problem and problem.rbac_role else "the required role"
    title = problem.title if problem else "the resource"
    return [
        f"{title} uses Azure role assignments, which admin consent does not create. The "
        f"customer must assign the role '{role}' on {_rbac_scope(facts, problem)} to the "
        f"enterprise application {facts.app} in tenant {facts.tenant_id}."
    ]


def _rbac_scope(facts: Facts, problem: Problem | None) -> str:
    """Where the Azure role is assigned, as precisely as the tenant's settings say."""
    if problem is not None and problem.resource == "loganalytics":
        dcr = facts.loganalytics.get("dcr", "")
        return f"the data collection rule {dcr}" if dcr else "the data collection rule"
    return "each subscription the MSSP is to see (or a management group above them)"


# Where a customer assigns an Azure role: the Azure portal of their cloud (the sandbox has
# none; its customers stand for public-cloud ones), and the blade per resource.
AZURE_PORTALS = {
    "public": "https://portal.azure.com",
    "usgov": "https://portal.azure.us",
    "china": "https://portal.azure.cn",
}
RBAC_BLADES = {
    "arm": "/#view/Microsoft_Azure_Billing/SubscriptionsBladeV2",
    "loganalytics": "/#browse/microsoft.insights%2Fdatacollectionrules",
}


def rbac_link(cloud: str, resource: str) -> str:
    """The Azure portal page where the role for `resource` is assigned."""
    portal = AZURE_PORTALS.get(cloud, AZURE_PORTALS["public"])
    return portal + RBAC_BLADES.get(resource, RBAC_BLADES["arm"])


def _rbac_customer(facts: Facts, problem: Problem | None) -> str:
    role = problem.rbac_role if problem and problem.rbac_role else "the required role"
    title = problem.title if problem else "Azure"
    resource = problem.resource if problem else "arm"
    if resource == "loganalytics":
        dcr = facts.loganalytics.get("dcr", "")
        where = "Data collection rules → " + (f"the rule {dcr}" if dcr else "your rule")
    else:
        where = "Subscriptions → each subscription we are to see"
    return (
        f"For {title}: in the Azure portal, open {where} → Access control (IAM) → Add role "
        f"assignment, and assign the role \u201c{role}\u201d to the application {facts.app}."
    )


def _rbac_customer_link(facts: Facts, problem: Problem | None) -> str:
    return rbac_link(facts.cloud, problem.resource if problem else "arm")


def _licence(facts: Facts, problem: Problem | None) -> list[str]:
    key = problem.resource if problem else ""
    title = problem.title if problem else "A resource"
    need = LICENCES.get(key, "the service to be provisioned")
    return [
        f"{title} is not provisioned in tenant {facts.tenant_id}: it needs {need}.",
        "If the customer does not have it, invite the tenant again with an access profile "
        "without this service. If they do, verify again once it is set up; should the "
        "permission then be reported missing, the customer must consent again (consent "
        "grants permissions only for services present at that time).",
    ]


def _licence_customer(facts: Facts, problem: Problem | None) -> str:
    title = problem.title if problem else "One of the services"
    need = LICENCES.get(problem.resource if problem else "", "a licence")
    return f"{title} is not available in your organisation yet: it needs {need}."


def _platform_customer(facts: Facts, problem: Problem | None) -> str:
    return (
        f"Thank you, your consent was received. {facts.mssp_name} has a technical problem on "
        "its side that it is fixing now; there is nothing for you to do."
    )


def _fic_remediation(facts: Facts, problem: Problem | None) -> list[str]:
    return _fic(facts)


def _fic_diagnosis(key: str, title: str, meaning: str, code: int) -> Diagnosis:
    """A federated-credential mismatch: the MSSP's side, fixed with the exact FIC values."""
    return Diagnosis(
        key,
        title,
        meaning,
        Outcome.PLATFORM_ERROR,
        codes=(code,),
        remediation=_fic_remediation,
        customer=_platform_customer,
    )


def _transient_customer(facts: Facts, problem: Problem | None) -> str:
    return (
        "Microsoft's services asked us to wait a moment, so the check is not finished. We try "
        "again automatically; there is nothing for you to do."
    )


def _consent_again(facts: Facts) -> str:
    if facts.consent_link:
        return "open the consent link again, sign in as a Global Administrator and accept"
    return (
        f"ask {facts.mssp_name} for a new consent link, then accept it signed in as a Global "
        "Administrator"
    )


def _reconsent_customer(facts: Facts, problem: Problem | None) -> str:
    return (
        f"We could not find {facts.mssp_name}'s application, {facts.app}, in your organisation. "
        f"Please {_consent_again(facts)}."
    )


def _home_app_missing(facts: Facts, problem: Problem | None) -> list[str]:
    return [
        f"Entra found no service principal of app {facts.app_client_id} in the home tenant "
        f"{facts.home_tenant_id}: ENTRA_APP_CLIENT_ID must be the application (client) id of "
        f"the MSSP's multi-tenant app registered in {facts.home_tenant_id} (Entra admin "
        "center, signed in to the home tenant → App registrations).",
        "Then run `manage.py doctor` again.",
    ]


def _wrong_direction(facts: Facts, problem: Problem | None) -> list[str]:
    working = facts.working_app_client_id
    if working:
        target = f"app registration {working}"
        use = (
            f"Set ENTRA_APP_CLIENT_ID to {working}, the MSSP's multi-tenant app that last "
            f"verified a tenant (it is {facts.app_client_id}, an app registered outside the home "
            f"tenant {facts.home_tenant_id})."
        )
    else:
        target = "that app registration"
        use = (
            f"ENTRA_APP_CLIENT_ID is {facts.app_client_id}, an app registered outside the home "
            f"tenant {facts.home_tenant_id}. Set it to the application (client) id of the "
            f"MSSP's multi-tenant app in {facts.home_tenant_id}: Entra admin center, signed in "
            "to the home tenant → App registrations → the app whose supported account types "
            "are 'Multiple organizations' (the app customers consent to and staff sign in with)."
        )
    if facts.home:
        customers = (
            f"If {facts.app_client_id} was created by a customer in their own tenant, ask that "
            "customer's administrator to delete it: it cannot be used. Customers only consent "
            "to the MSSP's app, through an invitation from the console."
        )
    else:
        customers = (
            f"Once the setting is fixed, verify tenant {facts.tenant_id} again. If it then "
            "reports the app not consented, its administrator consented to "
            f"{facts.app_client_id} (invitation links use ENTRA_APP_CLIENT_ID): send them the "
            "consent link again. An app the customer created for the MSSP in their own tenant "
            "cannot be used; they may delete it."
        )
    return [use, *_fic(facts, target), customers]


def _la_settings(facts: Facts, problem: Problem | None) -> list[str]:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(facts.loganalytics.items())) or "none"
    return [
        "The Logs Ingestion probe needs the customer's data collection endpoint, the data "
        "collection rule's immutable id and the stream name. Set them in the probe settings "
        f"of tenant {facts.tenant_id}: "
        '{"loganalytics": {"endpoint": "https://<dce>.<region>.ingest.monitor.azure'
        '.com", "dcr": "dcr-…", "stream": "Custom-…"}}.',
        f"Currently configured: {shown}.",
    ]


_CATALOGUE: tuple[Diagnosis, ...] = (
    Diagnosis(
        "verified",
        "Access verified",
        "A token was obtained in the tenant, it carries every required permission and each "
        "probe call succeeded.",
        Outcome.VERIFIED,
        customer=lambda f, p: (
            f"Everything is in place: {f.mssp_name} can now reach the services you agreed to. "
            "There is nothing more to do."
        ),
    ),
    # -- no access: definitive, the tenant's side ----------------------------------------
    Diagnosis(
        "not_consented",
        "App not consented in the tenant",
        "Entra found no service principal of the MSSP's app in this tenant: admin consent was "
        "never granted, or it was removed later (the enterprise application was deleted).",
        Outcome.NO_ACCESS,
        codes=(700016, 7000229),
        remediation=lambda f, p: [
            f"Tenant {f.tenant_id} has no service principal of {f.app}. {_reconsent(f)}",
            "If the customer removed the app on purpose, offboard the tenant.",
        ],
        customer=_reconsent_customer,
        home_remediation=_home_app_missing,
    ),
    Diagnosis(
        "consent_required",
        "Consent required",
        "Entra says the administrator has not consented to the app. With application "
        "permissions this should not occur; it means consent is missing or incomplete.",
        Outcome.NO_ACCESS,
        codes=(65001,),
        remediation=lambda f, p: [
            f"Consent to {f.app} in tenant {f.tenant_id} is missing or incomplete. " + _reconsent(f)
        ],
        customer=_reconsent_customer,
        home_remediation=_home_app_missing,
    ),
    Diagnosis(
        "app_disabled",
        "App disabled in the tenant",
        "The MSSP's app exists in the tenant but is disabled (the enterprise application's "
        "'Enabled for users to sign in' is off), so Entra refuses every token.",
        Outcome.NO_ACCESS,
        codes=(7000112,),
        remediation=lambda f, p: [
            f"Ask the customer to enable the enterprise application {f.app} in tenant "
            f"{f.tenant_id}: Entra admin center → Enterprise applications → Properties → "
            "Enabled for users to sign in = Yes. No new consent is needed.",
            "If they disabled it on purpose, offboard the tenant.",
        ],
        customer=lambda f, p: (
            f"{f.mssp_name}'s application is switched off in your organisation. To continue, "
            "an administrator must switch it back on: Microsoft Entra admin center → Enterprise "
            f"applications → {f.app} → Properties → \u201cEnabled for users to sign in\u201d "
            "= Yes."
        ),
        home_remediation=lambda f, p: [
            f"The service principal of {f.app} in the home tenant {f.home_tenant_id} is "
            "disabled: Entra admin center, signed in to the home tenant → Enterprise "
            "applications → Properties → Enabled for users to sign in = Yes.",
            "Then run `manage.py doctor` again.",
        ],
    ),
    Diagnosis(
        "tenant_not_found",
        "Tenant not found",
        "Entra does not know this tenant in this cloud: it was deleted, the id is wrong, or "
        "it lives in another cloud (US Government, China).",
        Outcome.NO_ACCESS,
        codes=(90002,),
        remediation=lambda f, p: [
            f"Check the tenant id {f.tenant_id} with the customer, and which Microsoft cloud "
            f"their tenant is in (this portal runs in {f.cloud or 'its configured cloud'}).",
            "If the tenant was deleted, offboard it.",
        ],
        home_remediation=lambda f, p: [
            f"Entra does not know the home tenant {f.home_tenant_id} in cloud "
            f"{f.cloud or '?'}: check ENTRA_HOME_TENANT_ID and ENTRA_CLOUD, then run "
            "`manage.py doctor` again."
        ],
        customer=lambda f, p: (
            "Microsoft could not find your organisation's tenant. Please contact us to confirm "
            "your tenant id."
        ),
    ),
    Diagnosis(
        "tenant_mismatch",
        "Token from another tenant",
        "The token Entra issued names a different tenant than the one asked for. The tenant "
        "is not treated as verified.",
        Outcome.NO_ACCESS,
        remediation=lambda f, p: [
            f"Check that {f.tenant_id} is the customer's tenant id (not a domain alias of "
            "another tenant) and verify again."
        ],
        home_remediation=lambda f, p: [
            f"Check that ENTRA_HOME_TENANT_ID ({f.home_tenant_id}) is the tenant id of the "
            "MSSP's home tenant, not a domain alias of another one."
        ],
        customer=lambda f, p: "We could not confirm your organisation; we will contact you.",
    ),
    Diagnosis(
        "wrong_cloud",
        "Tenant in another cloud",
        "The tenant is recorded in a different Microsoft cloud from the one this portal "
        "deployment runs in; tokens cannot be exchanged across clouds.",
        Outcome.NO_ACCESS,
        remediation=lambda f, p: [
            f"Tenant {f.tenant_id} is recorded in another cloud than this deployment's "
            f"({f.cloud or '?'}). Onboard it from a portal deployment in its own cloud, or "
            "correct its cloud and verify again."
        ],
        customer=lambda f, p: "We could not reach your organisation yet; we will contact you.",
    ),
    # -- incomplete: a token works, something is missing ---------------------------------
    Diagnosis(
        "resource_not_provisioned",
        "Service not available in the tenant (licence)",
        "Entra has no service principal for this resource in the tenant: the product is not "
        "licensed or was never set up there.",
        Outcome.INCOMPLETE,
        codes=(500011,),
        remediation=_licence,
        customer=_licence_customer,
    ),
    Diagnosis(
        "role_missing",
        "Permission missing",
        "A token was issued, but without a permission the MSSP needs. Typically consent was "
        "granted before the permission was added to the app.",
        Outcome.INCOMPLETE,
        remediation=_missing_roles,
        customer=lambda f, p: (
            f"{f.mssp_name} needs a permission that was added after you consented"
            + (f" ({', '.join(p.roles_missing)} for {p.title})" if p and p.roles_missing else "")
            + f". Please {_consent_again(f)}: it lists everything requested."
        ),
    ),
    Diagnosis(
        "rbac_role_missing",
        "Azure role assignment missing",
        "The token works but the resource refused the call: the app has no Azure role "
        "assignment there (admin consent does not assign Azure roles).",
        Outcome.INCOMPLETE,
        remediation=_missing_rbac,
        customer=_rbac_customer,
        customer_link=_rbac_customer_link,
    ),
    Diagnosis(
        "arm_no_subscriptions",
        "No Azure role on any subscription",
        "Azure Resource Manager answered but listed no subscription: the app holds no role on "
        "any subscription of the tenant (which may well have subscriptions).",
        Outcome.INCOMPLETE,
        remediation=_missing_rbac,
        customer=_rbac_customer,
        customer_link=_rbac_customer_link,
    ),
    Diagnosis(
        "probe_forbidden",
        "Call refused by the service",
        "The token carries the expected permissions, yet the service refused the probe "
        "call (HTTP 403). The service may need its own setup or a role inside it.",
        Outcome.INCOMPLETE,
        remediation=lambda f, p: [
            f"{p.title if p else 'The service'} refused the call ({p.detail if p else 'HTTP 403'}"
            f") although the token carries its permissions. Check the service's own access "
            f"settings in tenant {f.tenant_id}, then verify again; a new consent would grant "
            "nothing more.",
        ],
        customer=lambda f, p: (
            f"{p.title if p else 'One service'} did not let us in yet. We will contact you "
            "about the setting that is missing."
        ),
    ),
    Diagnosis(
        "probe_unauthorized",
        "Token rejected by the service",
        "The service rejected a freshly issued token (HTTP 401), usually because the product "
        "is not set up in the tenant.",
        Outcome.INCOMPLETE,
        remediation=lambda f, p: [
            f"{p.title if p else 'The service'} rejected the token ({p.detail if p else 'HTTP 401'}"
            f"). Check that the product is licensed and set up in tenant {f.tenant_id}, then "
            "verify again.",
        ],
        customer=_licence_customer,
    ),
    Diagnosis(
        "probe_failed",
        "Probe call failed",
        "The service answered the probe call with an error that is neither a permission "
        "problem nor a temporary one.",
        Outcome.INCOMPLETE,
        remediation=lambda f, p: [
            f"{p.title if p else 'The service'} answered {p.detail if p else 'an error'}. Check "
            f"the probe settings of tenant {f.tenant_id}, then verify again."
        ],
        customer=lambda f, p: "We are finishing the setup on our side; we will contact you.",
    ),
    Diagnosis(
        "loganalytics_not_configured",
        "Logs Ingestion not configured",
        "The tenant has no (or an invalid) data collection endpoint, rule or stream in its "
        "probe settings, so ingestion cannot be tested.",
        Outcome.INCOMPLETE,
        remediation=_la_settings,
        customer=lambda f, p: (
            "To send logs to your workspace we need your data collection endpoint, rule id and "
            "stream name; we will ask you for them."
        ),
    ),
    Diagnosis(
        "resource_unavailable_in_cloud",
        "Service not offered in this cloud",
        "The access profile asks for a service that this Microsoft cloud does not offer.",
        Outcome.INCOMPLETE,
        remediation=lambda f, p: [
            f"Invite tenant {f.tenant_id} again with an access profile without "
            f"{p.title if p else 'this service'}: cloud {f.cloud or '?'} does not offer it."
        ],
        customer=lambda f, p: "We are adjusting our setup for your cloud; we will contact you.",
    ),
    Diagnosis(
        "entra_object_not_found",
        "Entra reported 'not found'",
        "Entra answered AADSTS1100000 ('not found'), which Microsoft does not document "
        "further. Access is not proven.",
        Outcome.INCOMPLETE,
        codes=(1100000,),
        remediation=lambda f, p: [
            f"Verify tenant {f.tenant_id} again later; if it persists, open a Microsoft support "
            f"case quoting the code {f.code or 'AADSTS1100000'}.",
        ],
        customer=lambda f, p: "We could not finish the check yet; we will contact you.",
    ),
    # -- platform errors: the MSSP's side; no tenant changes -----------------------------
    Diagnosis(
        "identity_unavailable",
        "Managed identity unavailable",
        "The portal could not get a token from its managed identity, so no tenant can be "
        "checked. This is on the MSSP's side.",
        Outcome.PLATFORM_ERROR,
        remediation=lambda f, p: [
            f"Check that the user-assigned managed identity {f.managed_identity_client_id} of "
            f"the home tenant {f.home_tenant_id} is attached to the compute running the "
            "portal's worker, and that the identity endpoint (IMDS or IDENTITY_ENDPOINT) is "
            "reachable from it.",
            "Or, on Kubernetes, that ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE points at the projected "
            "token.",
            "Then run `manage.py doctor`.",
        ],
        customer=_platform_customer,
    ),
    _fic_diagnosis(
        "fic_mismatch",
        "Federated credential does not match",
        "Entra found no federated identity credential on the app matching the managed "
        "identity's token (issuer, subject and audience together). A newly created credential "
        "also gives this for a few minutes while it propagates.",
        70021,
    ),
    _fic_diagnosis(
        "fic_issuer_mismatch",
        "Federated credential: wrong issuer",
        "The app's federated identity credential has an issuer that is not the managed "
        "identity's token issuer.",
        700211,
    ),
    _fic_diagnosis(
        "fic_audience_mismatch",
        "Federated credential: wrong audience",
        "The app's federated identity credential has an audience other than the token "
        "exchange audience of this cloud.",
        700212,
    ),
    _fic_diagnosis(
        "fic_subject_mismatch",
        "Federated credential: wrong subject",
        "The app's federated identity credential names a subject other than the managed "
        "identity's object (principal) id — a common slip is its client id.",
        700213,
    ),
    _fic_diagnosis(
        "fic_missing",
        "No federated credential on the app",
        "The app registration has no federated identity credential at all.",
        70025,
    ),
    Diagnosis(
        "fic_wrong_direction",
        "Federated credential on an app in another tenant",
        "The app the portal presents is registered in a different tenant from the managed "
        "identity. Tenant-to-tenant federated credentials do not exist: the credential must "
        "be on the MSSP's own multi-tenant app, in the home tenant, and the customer only "
        "consents to that app. A separate app created in the customer's tenant cannot be "
        "used.",
        Outcome.PLATFORM_ERROR,
        codes=(700236,),
        remediation=_wrong_direction,
        customer=_platform_customer,
    ),
    Diagnosis(
        "federation_not_allowed",
        "Entra token refused as a federated assertion",
        "Entra does not accept this Entra-issued token for federation (AADSTS700222): the "
        "assertion is not from a managed identity of the home tenant.",
        Outcome.PLATFORM_ERROR,
        codes=(700222,),
        remediation=lambda f, p: [
            f"Use the token of the user-assigned managed identity {f.managed_identity_client_id} "
            f"of the home tenant {f.home_tenant_id} (audience {f.fic_audience}) as the "
            "assertion: check ENTRA_MANAGED_IDENTITY_CLIENT_ID.",
            *_fic(f),
        ],
        customer=_platform_customer,
    ),
    Diagnosis(
        "assertion_time_invalid",
        "Assertion time invalid — check clock",
        "Entra says the managed identity token is outside its validity window, and a freshly "
        "requested one was refused too: the clock of the portal's host (or of the token "
        "source) is off.",
        Outcome.PLATFORM_ERROR,
        codes=(700024,),
        remediation=lambda f, p: [
            "Check the clock of the host running the portal's worker (NTP) and of the identity "
            "endpoint.",
            f"The assertion presented was valid {f.assertion_window}.",
        ],
        customer=_platform_customer,
    ),
    Diagnosis(
        "assertion_invalid",
        "Assertion rejected",
        "Entra rejected the client assertion itself (malformed, or its signature failed).",
        Outcome.PLATFORM_ERROR,
        codes=(700027, 50013, 50027),
        remediation=lambda f, p: [
            "Check that the assertion comes from the managed identity (or the workload identity "
            "token file) and is not altered on the way; run `manage.py doctor`."
        ],
        customer=_platform_customer,
    ),
    Diagnosis(
        "client_secret_rejected",
        "Client secret sent",
        "Entra received a client secret; the portal uses no secret, only the managed "
        "identity's assertion.",
        Outcome.PLATFORM_ERROR,
        codes=(7000215,),
        remediation=lambda f, p: [
            "Remove any client secret from the configuration; run `manage.py doctor`.",
        ],
        customer=_platform_customer,
    ),
    Diagnosis(
        "invalid_scope",
        "Invalid scope",
        "Entra refused the scope the portal asked for: the cloud configuration names a "
        "resource this cloud does not know.",
        Outcome.PLATFORM_ERROR,
        codes=(70011,),
        remediation=lambda f, p: [
            "Check ENTRA_CLOUD: every resource's scope must belong to the same Microsoft cloud."
        ],
        customer=_platform_customer,
    ),
    Diagnosis(
        "exchange_rejected",
        "Token request rejected",
        "Entra found the token request itself invalid (missing or malformed parameters).",
        Outcome.PLATFORM_ERROR,
        codes=(900144, 9002313, 90011, 7000218, 70003, 50059, 900023),
        remediation=lambda f, p: [
            f"Check ENTRA_APP_CLIENT_ID ({f.app_client_id}), ENTRA_CLOUD ({f.cloud or '?'}) and "
            f"the tenant id {f.tenant_id}; run `manage.py doctor`."
        ],
        customer=_platform_customer,
    ),
    # -- transient: retried, then the last definitive status stays, marked stale ---------
    Diagnosis(
        "throttled",
        "Throttled by Entra",
        "Entra answered 429 Too Many Requests (or AADSTS90055 / 50196) even after waiting as "
        "it asked (Retry-After). The tenant keeps its last definitive status, marked stale.",
        Outcome.TRANSIENT,
        codes=(90055, 50196),
        remediation=lambda f, p: [
            "Nothing to change: the scheduler verifies stale tenants again soon. If it "
            "persists, lower VERIFY_CONCURRENCY."
        ],
        customer=_transient_customer,
    ),
    Diagnosis(
        "entra_unavailable",
        "Entra temporarily unavailable",
        "Entra answered with a server error (5xx, AADSTS90033) after every retry.",
        Outcome.TRANSIENT,
        codes=(90033,),
        remediation=lambda f, p: ["Nothing to change: the scheduler verifies stale tenants again."],
        customer=_transient_customer,
    ),
    Diagnosis(
        "network_error",
        "Network error or time-out",
        "A call to Entra or to a service timed out or could not connect, after every retry.",
        Outcome.TRANSIENT,
        remediation=lambda f, p: [
            "Check the outbound network of the portal's worker (proxy, firewall, DNS) if it "
            "persists; otherwise nothing to change."
        ],
        customer=_transient_customer,
    ),
    Diagnosis(
        "probe_throttled",
        "Throttled by the service",
        "A service answered 429 to the probe call even after waiting as it asked.",
        Outcome.TRANSIENT,
        remediation=lambda f, p: ["Nothing to change: the scheduler verifies stale tenants again."],
        customer=_transient_customer,
    ),
    Diagnosis(
        "probe_unavailable",
        "Service temporarily unavailable",
        "A service answered the probe call with a server error after every retry.",
        Outcome.TRANSIENT,
        remediation=lambda f, p: ["Nothing to change: the scheduler verifies stale tenants again."],
        customer=_transient_customer,
    ),
    Diagnosis(
        "internal_error",
        "Verification failed inside the portal",
        "The verification stopped on an unexpected error in the portal; the worker's log "
        "has the details. The tenant keeps its last definitive status, marked stale.",
        Outcome.TRANSIENT,
        remediation=lambda f, p: [
            f"Look up verification {f.verification_code or '(its id)'} in the worker's log."
        ],
        customer=_transient_customer,
    ),
    # -- the rest ------------------------------------------------------------------------
    Diagnosis(
        "offboarded",
        "Tenant offboarded",
        "The tenant was offboarded before the verification ran; no token was requested.",
        Outcome.CANCELLED,
        remediation=_no_action,
        customer=lambda f, p: f"{f.mssp_name} no longer accesses your organisation.",
    ),
    Diagnosis(
        "unclassified",
        "Unclassified error",
        "Entra or a service answered with an error this catalogue does not know. The code is "
        "shown as received; access is not proven.",
        Outcome.INCOMPLETE,
        remediation=lambda f, p: [
            f"Look up {f.code or 'the code'} at https://login.microsoftonline.com/error "
            "and in Microsoft's error code reference; verify again once resolved."
        ],
        customer=lambda f, p: "We could not finish the check yet; we will contact you.",
    ),
)

CATALOGUE: dict[str, Diagnosis] = {d.key: d for d in _CATALOGUE}
# The diagnoses a new admin consent fixes: the app missing from the tenant, or a permission
# added after the customer consented.
RECONSENT_FIXES = frozenset({"not_consented", "consent_required", "role_missing"})
BY_CODE: dict[int, str] = {code: d.key for d in _CATALOGUE for code in d.codes}
PLATFORM_KEYS = frozenset(d.key for d in _CATALOGUE if d.outcome == Outcome.PLATFORM_ERROR)


def get(key: str) -> Diagnosis:
    """The catalogue entry for `key`; unknown keys give "unclassified"."""
    return CATALOGUE.get(key) or CATALOGUE["unclassified"]


def describe(verification: Verification, *, consent_link: str = "") -> Explanation:
    """What this verification found, with what to do, in the operator's and the customer's
    words. `consent_link` is the invitation link the customer can use again (the caller
    knows invitations; the engine does not), or "" when there is none. Never raises on
    unknown keys or odd results."""
    tenant = verification.tenant
    key = verification.diagnosis or (
        "verified" if verification.outcome == Outcome.VERIFIED else "unclassified"
    )
    facts = _facts(verification, tenant, consent_link)
    if key == "fic_wrong_direction":
        facts = replace(facts, working_app_client_id=working_app(facts.app_client_id))
    problems = _problems(verification)
    diagnosis = get(key)
    if verification.outcome == Outcome.INCOMPLETE and problems:
        # Everything missing at once, so the customer is asked one time.
        remediation = _unique(r for p in problems for r in get(p.key).remediation(facts, p))
        steps = _unique(get(p.key).customer(facts, p) for p in problems)
        links = {
            get(p.key).customer(facts, p): get(p.key).customer_link(facts, p) for p in problems
        }
    else:
        problem = next((p for p in problems if p.key == key), problems[0] if problems else None)
        texts = diagnosis.remediation
        if facts.home and diagnosis.home_remediation is not None:
            texts = diagnosis.home_remediation
        remediation = _unique(texts(facts, problem))
        steps = _unique([diagnosis.customer(facts, problem)])
        links = {steps[0]: diagnosis.customer_link(facts, problem)} if steps else {}
    title = diagnosis.title
    if diagnosis.key == "unclassified" and verification.error_code:
        title = f"{diagnosis.title}: {verification.error_code}"
    return Explanation(
        key=diagnosis.key,
        outcome=verification.outcome or diagnosis.outcome,
        title=title,
        meaning=diagnosis.meaning,
        remediation=remediation,
        customer_text=" ".join(steps),
        code=verification.error_code,
        customer_steps=steps,
        customer_links={step: link for step, link in links.items() if link},
        reconsent_fixes=bool(
            RECONSENT_FIXES & ({p.key for p in problems} if problems else {diagnosis.key})
        ),
        working=_working(verification),
    )


def working_app(presented: str) -> str:
    """The app (client) id of the last verification that proved access with an app other
    than `presented`: the home tenant's multi-tenant app, when the configuration was changed
    away from it. "" when no such verification exists."""
    last = (
        Verification.objects.filter(outcome=Outcome.VERIFIED, platform__app_client_id__isnull=False)
        .exclude(platform__app_client_id=presented)
        .order_by("-finished_at")
        .values_list("platform__app_client_id", flat=True)
        .first()
    )
    return str(last or "")


def _working(verification: Verification) -> list[str]:
    results = verification.results if isinstance(verification.results, dict) else {}
    return [
        clouds.TITLES.get(resource, resource)
        for resource, result in results.items()
        if isinstance(result, dict) and result.get("diagnosis") == "verified"
    ]


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def _problems(verification: Verification) -> list[Problem]:
    results = verification.results if isinstance(verification.results, dict) else {}
    requirements = {r.resource: r for r in _requirements(verification.tenant)}
    problems = []
    for resource, result in results.items():
        if not isinstance(result, dict):
            continue
        key = str(result.get("diagnosis") or "")
        if not key or key == "verified":
            continue
        probe = result.get("probe") if isinstance(result.get("probe"), dict) else {}
        requirement = requirements.get(resource)
        problems.append(
            Problem(
                resource=resource,
                title=clouds.TITLES.get(resource, resource),
                key=key,
                code=str(result.get("error_code") or ""),
                roles_missing=tuple(str(r) for r in result.get("roles_missing") or ()),
                rbac_role=requirement.rbac_role if requirement else "",
                detail=str(probe.get("detail") or ""),
            )
        )
    return problems


def _requirements(tenant: Tenant) -> tuple[Requirement, ...]:
    try:
        return tenant.profile.requirements
    except KeyError:
        return ()


def _facts(verification: Verification, tenant: Tenant, consent_link: str) -> Facts:
    platform = verification.platform if isinstance(verification.platform, dict) else {}
    claims = platform.get("assertion") if isinstance(platform.get("assertion"), dict) else {}
    home = settings.ENTRA_HOME_TENANT_ID
    try:
        cloud = clouds.current()
        issuer, audience, cloud_name = cloud.issuer(home), cloud.fic_audience, cloud.name
    except ValueError:
        issuer, audience, cloud_name = "", "", ""
    window = ""
    if claims.get("nbf") and claims.get("exp"):
        window = f"from {_utc(claims['nbf'])} to {_utc(claims['exp'])} (UTC)"
    loganalytics = (tenant.probe_settings or {}).get("loganalytics")
    return Facts(
        tenant_id=str(tenant.tenant_id),
        tenant_name=tenant.display_name,
        mssp_name=settings.MSSP_NAME,
        app_client_id=str(platform.get("app_client_id") or settings.ENTRA_APP_CLIENT_ID),
        home_tenant_id=home,
        managed_identity_client_id=settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID,
        fic_issuer=str(claims.get("iss") or issuer),
        fic_subject=str(claims.get("sub") or ""),
        fic_audience=audience,
        app_name=settings.ENTRA_APP_DISPLAY_NAME,
        fic_from_token=bool(claims.get("iss") and claims.get("sub")),
        assertion_window=window,
        consent_link=consent_link,
        code=verification.error_code,
        cloud=cloud_name,
        verification_code=str(verification.code) if verification.pk else "",
        loganalytics=(
            {str(k): str(v) for k, v in loganalytics.items()}
            if isinstance(loganalytics, dict)
            else {}
        ),
    )


def _utc(epoch: object) -> str:
    try:
        return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return "?"
