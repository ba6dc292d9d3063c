"""Consent invitations: list, create, detail, revoke (admins only)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from audit.log import actor_of, record
from audit.models import AuditEvent
from consent import links, refusals
from consent.forms import InvitationForm
from consent.models import Invitation, InvitationNotSent, InvitationRefused
from consent.tasks import send_invitation_emails
from console.access import get_invitation_for_user, visible_invitations
from console.forms import ConfirmForm, InvitationFilterForm, InvitationSelectionForm
from console.views.exports import csv_cell, csv_download
from mssp_portal import clouds
from tenants import profiles

PAGE_SIZE = 50


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_list(request: HttpRequest) -> HttpResponse:
    form = InvitationFilterForm(request.GET)
    invitations, status = _filtered(request, form)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/invitation_list.html",
        {"form": form, "page": page, "status": status, "query": query.urlencode()},
    )


def _filtered(request: HttpRequest, form: InvitationFilterForm) -> tuple[object, str]:
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
    return invitations, status


EXPORT_COLUMNS = [
    "customer_name",
    "tenant",
    "domain",
    "profile",
    "contact_name",
    "contact_email",
    "status",
    "expires_at",
    "link",
    "last_emailed_at",
]


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_export(request: HttpRequest) -> HttpResponse:
    """The invitations of the list's filter with their links, for MSSPs who send them through
    their own PSA tool. A link is a key to a consent page: the export is audited."""
    form = InvitationFilterForm(request.GET)
    invitations, status = _filtered(request, form)
    invitations = list(invitations.order_by("customer_name", "pk"))
    record(
        "invitations.exported",
        AuditEvent.Outcome.SUCCESS,
        actor=actor_of(request),
        detail={"rows": str(len(invitations)), "status": status or "all"},
    )
    return csv_download(
        "invitations.csv",
        EXPORT_COLUMNS,
        (
            [
                csv_cell(i.customer_name),
                str(i.expected_tenant_id or ""),
                csv_cell(i.expected_domain),
                i.access_profile,
                csv_cell(i.contact_name),
                csv_cell(i.contact_email),
                i.display_status.lower(),
                i.expires_at.isoformat(),
                links.invitation_url(i) if i.is_usable else "",
                i.emailed_at.isoformat() if i.emailed_at else "",
            ]
            for i in invitations
        ),
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_email(request: HttpRequest, invitation_code: uuid.UUID) -> HttpResponse:
    invitation = get_invitation_for_user(request, invitation_code)
    try:
        invitation.send_email(actor=actor_of(request))
    except InvitationNotSent as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Invitation emailed to {invitation.contact_email}.")
    return redirect("console:invitation", invitation_code=invitation.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitations_email_selected(request: HttpRequest) -> HttpResponse:
    """Email many (a selection, or an import's): one task, never inside this request."""
    form = InvitationSelectionForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["invitation"]:
        messages.error(request, "Select the invitations to email first.")
        return redirect("console:invitations")
    visible = visible_invitations(request).filter(code__in=form.cleaned_data["invitation"])
    usable = visible.usable().exclude(contact_email="")
    codes = [str(code) for code in usable.values_list("code", flat=True)]
    skipped = visible.count() - len(codes)
    if codes:
        send_invitation_emails.enqueue(codes, actor_of(request))
    text = ngettext(
        "Emailing %(n)d invitation in the background",
        "Emailing %(n)d invitations in the background",
        len(codes),
    ) % {"n": len(codes)}
    if skipped:
        text += ngettext(
            "; %(n)d skipped (no contact email, or the link no longer works)",
            "; %(n)d skipped (no contact email, or the link no longer works)",
            skipped,
        ) % {"n": skipped}
    messages.success(request, text + ". Each one's page shows when it was sent.")
    return redirect("console:invitations")


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
