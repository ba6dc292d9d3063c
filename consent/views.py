"""The customer's side of onboarding: invitation page → Entra's admin consent → callback →
landing page. Everyone here is anonymous; what they hold is an invitation code or a `state`.

The callback is only a hint (Microsoft: the `tenant` parameter can be forged). It records
"consent reported" and queues a verification; only a token from that tenant proves access.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from audit import log as audit
from audit.models import AuditEvent
from consent import links, refusals
from consent.forms import ConsentCallbackForm
from consent.models import ConsentTicket, Invitation, TooManyOpenTickets
from mssp_portal import clouds
from mssp_portal.errors import too_many_requests
from mssp_portal.ratelimits import limit_per_address, over_limit
from mssp_portal.untrusted import for_log
from tenants.models import Tenant, Verification
from tenants.tasks import enqueue_verification
from tenants.verification import diagnosis

logger = logging.getLogger("mssp_portal.consent")

# Entra's own callbacks are a few hundred characters; web servers commonly refuse request
# lines past 4-8 KB. Anything longer is not from Entra and is refused unread.
MAX_QUERY_LENGTH = 8192

# What a Microsoft `error` means for the customer. Only this value picks the explanation;
# `error_description` is the sender's free text and never drives anything.
KNOWN_ERRORS = {
    "access_denied",
    "consent_required",
    "interaction_required",
    "invalid_client",
    "invalid_request",
    "invalid_scope",
    "login_required",
    "server_error",
    "temporarily_unavailable",
    "unauthorized_client",
}

CUSTOMER = "customer"

View = Callable[..., HttpResponse]


def referrer_policy(policy: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            response.headers["Referrer-Policy"] = policy
            return response

        return wrapper

    return decorator


# These URLs carry the invitation code or Entra's consent response: nothing loaded or
# followed from them may pass them on.
no_referrer = referrer_policy("no-referrer")
# The invitation page holds the "Grant admin consent" form. Under no-referrer, browsers send
# `Origin: null` with its POST, which CSRF protection rightly refuses; same-origin keeps the
# origin for that POST and still gives other sites nothing.
same_origin_referrer = referrer_policy("same-origin")


def unavailable_on_database_error(view: View) -> View:
    """A database outage gets a "please retry" page (503), not a traceback. Every write of
    these views sits in one transaction, so nothing is half-done when this page shows."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DatabaseError as exc:
            reference = uuid.uuid4()
            logger.error(
                "consent view=%s database unavailable: %s: %s reference=%s",
                view.__name__,
                type(exc).__name__,
                for_log(exc, 200),
                reference,
            )
            context = {"reference": reference, "at_callback": view.__name__ == "callback"}
            response = render(request, "consent/unavailable.html", context, status=503)
            response.headers["Retry-After"] = "30"
            return response

    return wrapper


def _get_invitation(code: uuid.UUID) -> Invitation | None:
    return Invitation.objects.select_related("tenant").filter(code=code).first()


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "consent/not_found.html", status=404)


def _usable_invitation(request: HttpRequest, code: uuid.UUID) -> Invitation | HttpResponse:
    """The invitation the customer can still start consent from, or the page saying why
    not (404 unknown; 410 expired, revoked or used)."""
    invitation = _get_invitation(code)
    if invitation is None:
        return _not_found(request)
    if not invitation.is_usable:
        context = {"invitation": invitation}
        if invitation.tenant is not None:
            # A used invitation: where that tenant stands now, and what is still to do.
            context.update(_tenant_state(invitation.tenant))
        return render(request, "consent/invitation_closed.html", context, status=410)
    return invitation


@same_origin_referrer
@never_cache
@require_GET
@unavailable_on_database_error
@limit_per_address("consent.invitation", "RATELIMIT_CONSENT")
def invitation(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    invitation = _usable_invitation(request, code)
    if isinstance(invitation, HttpResponse):
        return invitation

    profile = invitation.profile
    requirements = [
        {"title": clouds.TITLES[r.resource], "requirement": r} for r in profile.requirements
    ]
    context = {"invitation": invitation, "profile": profile, "requirements": requirements}
    response = render(request, "consent/invitation.html", context)
    # The button's POST is answered with a redirect to Entra; browsers apply form-action to
    # that redirect too, so this page allows the cloud's sign-in host as well.
    response._csp_update = {"form-action": [clouds.current().login_url]}
    return response


@no_referrer
@never_cache
@require_POST
@csrf_protect
@unavailable_on_database_error
@limit_per_address("consent.invitation", "RATELIMIT_CONSENT")
@limit_per_address("consent.start", "RATELIMIT_CONSENT_STARTS")
def start(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    invitation = _usable_invitation(request, code)
    if isinstance(invitation, HttpResponse):
        return invitation

    try:
        with transaction.atomic():
            ticket, state = invitation.issue_ticket()
            audit.record(
                "consent.started",
                AuditEvent.Outcome.SUCCESS,
                actor=CUSTOMER,
                tenant_id=invitation.expected_tenant_id,
                detail={"invitation": invitation.code},
            )
    except TooManyOpenTickets as full:
        return _too_many_open(request, invitation, full.retry_after)
    return HttpResponseRedirect(links.admin_consent_url(ticket.expected_tenant_id, state))


def _too_many_open(request: HttpRequest, invitation: Invitation, retry_after: int) -> HttpResponse:
    minutes = max(1, -(-retry_after // 60))
    context = {
        "invitation": invitation,
        "wait": "a minute" if minutes == 1 else f"{minutes} minutes",
    }
    response = render(request, "consent/too_many_open.html", context, status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response


@no_referrer
@never_cache
@require_GET
@unavailable_on_database_error
def callback(request: HttpRequest) -> HttpResponse:
    """Entra's admin-consent redirect. Registered on the app: this path never changes."""
    query_length = len(request.META.get("QUERY_STRING", ""))
    if query_length > MAX_QUERY_LENGTH:
        return _invalid(request, f"query string of {query_length} characters")
    form = ConsentCallbackForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form.problems())
    # Counted only from here: a malformed callback costs no query, a counted one costs a few.
    retry_after = over_limit(request, "consent.callback", settings.RATELIMIT_CONSENT)
    if retry_after is not None:
        return too_many_requests(request, retry_after=retry_after)
    data = form.cleaned_data

    ticket = (
        ConsentTicket.objects.select_related("invitation", "invitation__tenant")
        .filter(state_hash=ConsentTicket.hash(data["state"]))
        .first()
    )
    if ticket is None:
        return _invalid(request, "unknown state")
    if ticket.used_at is not None:
        return _already_used(request, ticket)
    if ticket.is_expired:
        return _expired(request, ticket)
    if ticket.invitation.status == Invitation.Status.REVOKED:
        return _withdrawn(request, ticket)
    if data["error"]:
        return _declined(request, ticket, data["error"], data["error_description"])

    tenant_id = data["tenant"]
    expected = ticket.expected_tenant_id
    if expected is None and ticket.invitation.tenant is not None:
        # An invitation without an expected tenant is bound by its first consent.
        expected = ticket.invitation.tenant.tenant_id
    if expected is not None and tenant_id != expected:
        return _tenant_mismatch(request, ticket, tenant_id, expected)
    return _record_consent(request, ticket, tenant_id)


def _invalid(request: HttpRequest, why: str) -> HttpResponse:
    """Nothing to tie the callback to: nothing is recorded, only a log line."""
    reference = uuid.uuid4()
    logger.warning("consent callback rejected: %s reference=%s", for_log(why, 200), reference)
    return render(request, "consent/link_invalid.html", {"reference": reference}, status=400)


def _already_used(request: HttpRequest, ticket: ConsentTicket) -> HttpResponse:
    # A refresh, the back button, or a replay: the first answer stands.
    event = audit.record(
        "consent.replayed",
        AuditEvent.Outcome.DENIED,
        actor=CUSTOMER,
        tenant_id=ticket.tenant_id,
        detail={"invitation": ticket.invitation.code, "first_result": ticket.result},
    )
    context = {
        "ticket": ticket,
        "invitation": ticket.invitation,
        "recorded": ticket.result == ConsentTicket.Result.CONSENTED,
        "reference": event.correlation_id,
    }
    return render(request, "consent/already_used.html", context, status=400)


def _redeem_and_audit(
    ticket: ConsentTicket,
    result: str,
    action: str,
    outcome: str = AuditEvent.Outcome.DENIED,
    *,
    tenant_id: uuid.UUID | None = None,
    audit_tenant_id: uuid.UUID | None = None,
    detail: dict[str, object] | None = None,
) -> AuditEvent | None:
    """Consume the ticket for a callback that records no consent, and audit it. None when
    a concurrent request consumed the ticket first."""
    with transaction.atomic():
        if not ticket.redeem(result, tenant_id):
            return None
        return audit.record(
            action,
            outcome,
            actor=CUSTOMER,
            tenant_id=audit_tenant_id or tenant_id,
            detail={"invitation": ticket.invitation.code, **(detail or {})},
        )


def _lost_race(request: HttpRequest, ticket: ConsentTicket) -> HttpResponse:
    ticket.refresh_from_db(fields=["used_at", "result", "tenant_id"])
    return _already_used(request, ticket)


def _expired(request: HttpRequest, ticket: ConsentTicket) -> HttpResponse:
    event = _redeem_and_audit(
        ticket,
        ConsentTicket.Result.EXPIRED,
        "consent.expired",
        detail={"expired_at": ticket.expires_at.isoformat()},
    )
    if event is None:
        return _lost_race(request, ticket)
    context = {"invitation": ticket.invitation, "reference": event.correlation_id}
    return render(request, "consent/link_expired.html", context, status=400)


def _withdrawn(request: HttpRequest, ticket: ConsentTicket) -> HttpResponse:
    event = _redeem_and_audit(ticket, ConsentTicket.Result.WITHDRAWN, "consent.withdrawn")
    if event is None:
        return _lost_race(request, ticket)
    context = {"invitation": ticket.invitation, "reference": event.correlation_id}
    return render(request, "consent/withdrawn.html", context, status=400)


def _declined(
    request: HttpRequest, ticket: ConsentTicket, error: str, description: str
) -> HttpResponse:
    known = error if error in KNOWN_ERRORS else "unrecognised"
    cloud = clouds.current()
    refusal = refusals.read(description, cloud)
    detail: dict[str, object] = {"error": known}
    if refusal.code:
        detail["code"] = refusal.code
    if refusal.missing_service:
        detail["missing_services"] = ",".join(refusal.missing)
    event = _redeem_and_audit(
        ticket,
        ConsentTicket.Result.DECLINED,
        "consent.declined",
        AuditEvent.Outcome.FAILURE,
        # Filed under the invitation's own expectation, never the redirect's `tenant`.
        audit_tenant_id=ticket.expected_tenant_id,
        detail=detail,
    )
    if event is None:
        return _lost_race(request, ticket)
    # The one place the description goes: a single escaped, bounded log line.
    logger.info(
        "consent declined at Microsoft: error=%s description=%s reference=%s",
        for_log(error, 64),
        for_log(description),
        event.correlation_id,
    )
    context = {
        "invitation": ticket.invitation,
        "error": known,
        "missing_service": refusal.missing_service,
        "missing": [
            {"title": cloud.resources[key].title, "needs": diagnosis.LICENCES[key]}
            for key in refusal.missing
        ],
        "invitation_url": request.build_absolute_uri(
            reverse("consent:invitation", args=[ticket.invitation.code])
        ),
        "can_retry": ticket.invitation.is_usable,
        "reference": event.correlation_id,
    }
    return render(request, "consent/declined.html", context, status=400)


def _tenant_mismatch(
    request: HttpRequest, ticket: ConsentTicket, tenant_id: uuid.UUID, expected: uuid.UUID
) -> HttpResponse:
    event = _redeem_and_audit(
        ticket,
        ConsentTicket.Result.TENANT_MISMATCH,
        "consent.rejected",
        tenant_id=tenant_id,
        detail={"expected_tenant": expected},
    )
    if event is None:
        return _lost_race(request, ticket)
    logger.warning(
        "consent callback for tenant %s on an invitation for %s rejected reference=%s",
        tenant_id,
        expected,
        event.correlation_id,
    )
    context = {"invitation": ticket.invitation, "reference": event.correlation_id}
    return render(request, "consent/tenant_mismatch.html", context, status=400)


def _record_consent(
    request: HttpRequest, ticket: ConsentTicket, tenant_id: uuid.UUID
) -> HttpResponse:
    invitation = ticket.invitation
    with transaction.atomic():
        # The conditional UPDATE serialises duplicates: of two identical callbacks racing
        # here, the second finds the ticket used and records nothing.
        if not ticket.redeem(ConsentTicket.Result.CONSENTED, tenant_id):
            return _lost_race(request, ticket)
        tenant = Tenant.objects.record_consent(
            tenant_id,
            customer_name=invitation.customer_name,
            domain=invitation.expected_domain,
            access_profile=invitation.access_profile,
            actor=CUSTOMER,
            detail={"invitation": invitation.code},
            contact_name=invitation.contact_name,
            contact_email=invitation.contact_email,
        )
        invitation.mark_used(tenant, actor=CUSTOMER)
        # One consent onboards the tenant: its other open links would only invite a second.
        Invitation.objects.revoke_open_for(
            tenant, actor="system", reason=f"tenant onboarded through invitation {invitation.code}"
        )
        enqueue_verification(tenant, Verification.Trigger.CONSENT, CUSTOMER)
    # Post/Redirect/Get: refreshing the landing page never replays the callback.
    response = HttpResponseRedirect(reverse("consent:landing", args=[invitation.code]))
    response.status_code = 303
    return response


@no_referrer
@never_cache
@require_GET
@unavailable_on_database_error
def landing(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    invitation = _get_invitation(code)
    if invitation is None or invitation.tenant is None:
        return _not_found(request)
    context = {"invitation": invitation, **_tenant_state(invitation.tenant)}
    return render(request, "consent/landing.html", context)


def _tenant_state(tenant: Tenant) -> dict[str, object]:
    """The tenant's newest verification and, once it finished, what it found in the
    customer's words (what works, what is left to do): the context of _verification.html."""
    verification = tenant.verifications.order_by("-created_at").first()
    checking = verification is not None and verification.state in Verification.OPEN_STATES
    return {
        "tenant": tenant,
        "verification": verification,
        "checking": checking,
        "explanation": (
            diagnosis.describe(verification, consent_link=_link_to_send_again(tenant))
            if verification and not checking
            else None
        ),
    }


def _link_to_send_again(tenant: Tenant) -> str:
    invitation = Invitation.objects.to_send_again(tenant)
    return links.invitation_url(invitation) if invitation else ""
