"""Consent invitations: list, create, detail, revoke (admins only)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts import roles
from audit.log import actor_of
from audit.models import AuditEvent
from consent import links, refusals
from consent.forms import InvitationForm
from consent.models import Invitation, InvitationRefused
from console.access import get_invitation_for_user, visible_invitations
from console.forms import ConfirmForm, InvitationFilterForm
from mssp_portal import clouds
from tenants import profiles

PAGE_SIZE = 50


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_list(request: HttpRequest) -> HttpResponse:
    form = InvitationFilterForm(request.GET)
    invitations = visible_invitations(request)
    status = form.cleaned_data.get("status") if form.is_valid() else ""
    if status == "usable":
        invitations = invitations.usable()
    elif status == "expired":
        invitations = invitations.filter(
            status=Invitation.Status.OPEN, expires_at__lte=timezone.now()
        )
    elif status:
        invitations = invitations.filter(status=status)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/invitation_list.html",
        {"form": form, "page": page, "status": status, "query": query.urlencode()},
    )


def profile_choices() -> list[dict[str, object]]:
    """Each access profile as the invitation form describes it: what it is for, and per
    service the application permission the token must carry or the Azure role the customer
    assigns."""
    return [
        {
            "key": profile.key,
            "name": profile.name,
            "summary": profile.summary,
            "needs": [
                {
                    "title": clouds.TITLES.get(r.resource, r.resource),
                    "permissions": r.permissions,
                    "rbac_role": r.rbac_role,
                }
                for r in profile.requirements
            ],
        }
        for profile in profiles.PROFILES.values()
    ]


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_create(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        expected = data["tenant"]
        try:
            invitation = Invitation.objects.create_invitation(
                customer_name=data["customer_name"],
                expected_tenant_id=expected.tenant_id,
                expected_domain=expected.domain,
                access_profile=data["access_profile"],
                days=data["days"],
                actor=actor_of(request),
                contact_name=data["contact_name"],
                contact_email=data["contact_email"],
                tenant_groups=list(data["tenant_groups"]),
            )
        except InvitationRefused as refused:  # another admin was quicker
            form.add_error("tenant", str(refused))
        else:
            messages.success(request, "Invitation created. Send the customer the link below.")
            return redirect("console:invitation", invitation_code=invitation.code)
    return render(
        request,
        "console/invitation_create.html",
        {"form": form, "profiles": profile_choices()},
        status=400 if request.method == "POST" else 200,
    )


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_detail(request: HttpRequest, invitation_code: uuid.UUID) -> HttpResponse:
    invitation = get_invitation_for_user(request, invitation_code)
    return render(
        request,
        "console/invitation_detail.html",
        {
            "invitation": invitation,
            "url": links.invitation_url(invitation),
            "tickets": invitation.tickets.order_by("-created_at")[:20],
            "missing_services": _missing_services(invitation),
        },
    )


def _missing_services(invitation: Invitation) -> list[dict[str, object]]:
    """The consents Microsoft refused for a service the customer's tenant lacks (650052),
    from their audit events: when, and which services (our own titles, never the text)."""
    events = AuditEvent.objects.filter(
        action="consent.declined",
        detail__invitation=str(invitation.code),
        detail__code=refusals.MISSING_SERVICE,
    ).order_by("-at")[:5]
    return [
        {
            "at": event.at,
            "services": [
                clouds.TITLES[key]
                for key in str(event.detail.get("missing_services", "")).split(",")
                if key in clouds.TITLES
            ],
        }
        for event in events
    ]


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_revoke(request: HttpRequest, invitation_code: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST revokes (the link stops working at once)."""
    invitation = get_invitation_for_user(request, invitation_code)
    form = ConfirmForm(request.POST or None)
    if request.method == "GET" or not form.is_valid():
        return render(
            request,
            "console/invitation_revoke.html",
            {"invitation": invitation, "form": form},
            status=200 if request.method == "GET" else 400,
        )
    if invitation.revoke(actor=actor_of(request)):
        messages.success(request, "Invitation revoked: its link no longer works.")
    else:
        messages.info(request, "This invitation was already used or revoked.")
    return redirect("console:invitation", invitation_code=invitation.code)
