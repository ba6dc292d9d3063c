"""One tenant: its page, and the actions on it (re-verify, offboard, re-consent), plus
re-verifying a selection or the whole fleet."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from audit.log import actor_of, record
from audit.models import AuditEvent
from consent import links
from consent.models import Invitation, InvitationRefused
from console.access import get_tenant_for_user, visible_tenants
from console.forms import (
    ConfirmForm,
    DashboardFilterForm,
    GroupAssignForm,
    TenantGroupsForm,
    TenantSelectionForm,
)
from console.views.dashboard import groups_for_filter, valid_filters
from mssp_portal import clouds
from notifications.models import Delivery
from tenants import profiles
from tenants.models import Tenant, TenantGroup, Verification
from tenants.tasks import enqueue_verification, reverify
from tenants.verification import diagnosis

HISTORY_SIZE = 25
TRAIL_SIZE = 50


def resource_rows(tenant: Tenant, verification: Verification | None) -> list[dict[str, Any]]:
    """Per resource of the tenant's access profile: what is required, what the token
    carried, and what the probe said (from the verification's results; never a token)."""
    results = (verification.results if verification else None) or {}
    try:
        requirements = profiles.get(tenant.access_profile).requirements
    except KeyError:
        requirements = ()
    rows = []
    for requirement in requirements:
        result = results.get(requirement.resource) or {}
        key = result.get("diagnosis") or ""
        rows.append(
            {
                "key": requirement.resource,
                "title": clouds.TITLES.get(requirement.resource, requirement.resource),
                "required": list(requirement.permissions),
                "rbac_role": requirement.rbac_role,
                "granted": result.get("roles_seen"),
                # Azure RBAC: no token carries it, the probe alone proves it.
                "by_rbac": bool(requirement.rbac_role and not requirement.permissions),
                "missing": result.get("roles_missing") or [],
                "token": result.get("token"),
                "error_code": result.get("error_code") or "",
                "tid_matches": result.get("tid_matches"),
                "probe": result.get("probe") or {},
                "diagnosis": diagnosis.get(key).title if key else "",
                "checked": bool(result),
            }
        )
    return rows


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def tenant_detail(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    tenant = get_tenant_for_user(request, tenant_code)
    history = list(tenant.verifications.all()[:HISTORY_SIZE])
    latest = next((v for v in history if v.state == Verification.State.DONE), None)
    if latest is None and history:
        latest = tenant.verifications.filter(state=Verification.State.DONE).first()
    reconsent = Invitation.objects.to_send_again(tenant)
    reconsent_url = links.invitation_url(reconsent) if reconsent else ""
    explanation = diagnosis.describe(latest, consent_link=reconsent_url) if latest else None
    return render(
        request,
        "console/tenant_detail.html",
        {
            "tenant": tenant,
            "explanation": explanation,
            "latest": latest,
            "resources": resource_rows(tenant, latest),
            "unneeded_roles": [
                {"title": clouds.TITLES.get(resource, resource), "roles": extra}
                for resource, extra in profiles.unneeded_roles(latest and latest.results).items()
            ],
            "history": history,
            "open_verification": next((v for v in history if v.is_open), None),
            "trail": AuditEvent.objects.filter(tenant_id=tenant.tenant_id)[:TRAIL_SIZE],
            "told": Delivery.objects.last_sent_about([tenant.tenant_id]).get(tenant.tenant_id),
            "invitations": list(Invitation.objects.for_tenant(tenant)[:20]),
            "reconsent": reconsent,
            "reconsent_url": reconsent_url,
            # Offered only where a new consent fixes what the latest verification found.
            "needs_reconsent": (
                tenant.status in (Tenant.Status.INCOMPLETE, Tenant.Status.NO_ACCESS)
                and (
                    explanation.reconsent_fixes
                    if explanation is not None
                    else tenant.diagnosis in diagnosis.RECONSENT_FIXES
                )
            ),
            "can_administer": request.user.has_perm(roles.ADMINISTER),
            "app_client_id": settings.ENTRA_APP_CLIENT_ID,
            "tenant_groups": list(tenant.tenant_groups.order_by("name")),
            "groups_form": (
                TenantGroupsForm(tenant=tenant) if request.user.has_perm(roles.ADMINISTER) else None
            ),
        },
    )


@require_POST
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def tenant_reverify(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    tenant = get_tenant_for_user(request, tenant_code)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.error(request, "This tenant is offboarded: it is not verified any more.")
    elif reverify(tenant, actor=actor_of(request)):
        messages.success(request, "Verification queued.")
    else:
        messages.info(request, "A verification of this tenant is already queued or running.")
    return redirect("console:detail", tenant_code=tenant.code)


@require_POST
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def reverify_selected(request: HttpRequest) -> HttpResponse:
    """Operators re-verify the selected tenants of their scope; a code outside it is
    ignored as an unknown one is."""
    form = TenantSelectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("tenant", ["Invalid selection."])))
        return redirect("console:dashboard")
    selected = form.cleaned_data["tenant"]
    visible = visible_tenants(request)
    tenants = visible.active().filter(code__in=selected)
    actor = actor_of(request)
    queued = skipped = 0
    with transaction.atomic():
        for tenant in tenants:
            if reverify(tenant, actor=actor):
                queued += 1
            else:
                skipped += 1
    offboarded = visible.filter(code__in=selected, status=Tenant.Status.OFFBOARDED).count()
    messages.success(request, queued_message(queued, skipped, offboarded))
    return redirect(reverse("console:dashboard") + _back_query(request))


def _back_query(request: HttpRequest) -> str:
    # Back to the dashboard view the admin came from (only our own filter fields).
    form = DashboardFilterForm(request.POST, groups=groups_for_filter(request))
    values = {k: v for k, v in valid_filters(form).items() if v}
    return "?" + urlencode(values) if values else ""


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def reverify_all(request: HttpRequest) -> HttpResponse:
    """GET asks for confirmation; POST queues a verification of every active tenant."""
    active = Tenant.objects.active()
    form = ConfirmForm(request.POST or None)
    if request.method == "GET" or not form.is_valid():
        return render(
            request,
            "console/reverify_all.html",
            {"form": form, "count": active.count()},
            status=200 if request.method == "GET" else 400,
        )
    actor = actor_of(request)
    queued = skipped = 0
    with transaction.atomic():
        for tenant in active.iterator(chunk_size=500):
            _verification, created = enqueue_verification(
                tenant, Verification.Trigger.MANUAL, requested_by=actor
            )
            queued += created
            skipped += not created
        record(
            "fleet.verification_requested",
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            detail={"queued": queued, "already_queued": skipped},
        )
    messages.success(request, queued_message(queued, skipped))
    return redirect("console:dashboard")


def queued_message(queued: int, skipped: int, offboarded: int = 0) -> str:
    """What a re-verify request did, counted right, with the reason for whatever it skipped."""
    if queued:
        parts = [ngettext("%d verification queued", "%d verifications queued", queued) % queued]
    else:
        parts = ["No verification queued"]
    if skipped:
        parts.append(
            ngettext(
                "%d tenant already has one queued or running",
                "%d tenants already have one queued or running",
                skipped,
            )
            % skipped
        )
    if offboarded:
        parts.append(
            ngettext(
                "%d tenant is offboarded and is never verified again",
                "%d tenants are offboarded and are never verified again",
                offboarded,
            )
            % offboarded
        )
    return "; ".join(parts) + "."


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_offboard(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST offboards: no more token requests for the tenant, its
    open invitations revoked, the record and its history kept for audit."""
    tenant = get_tenant_for_user(request, tenant_code)
    form = ConfirmForm(request.POST or None)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.info(request, "This tenant is already offboarded.")
        return redirect("console:detail", tenant_code=tenant.code)
    if request.method == "GET" or not form.is_valid():
        return render(
            request,
            "console/offboard.html",
            {"tenant": tenant, "form": form},
            status=200 if request.method == "GET" else 400,
        )
    if tenant.offboard(actor=actor_of(request)):
        messages.success(request, f"{tenant} is offboarded. Send the customer the steps below.")
    else:
        messages.info(request, "This tenant is already offboarded.")
    return redirect("console:detail", tenant_code=tenant.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_invite(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """A re-consent invitation for a known tenant (bound to it), e.g. after a permission
    was added to the app or the customer removed a grant."""
    tenant = get_tenant_for_user(request, tenant_code)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.error(
            request, "This tenant is offboarded. Create a new invitation to onboard it again."
        )
        return redirect("console:detail", tenant_code=tenant.code)
    try:
        Invitation.objects.reconsent_for(tenant, actor=actor_of(request))
    except InvitationRefused as refused:
        messages.error(request, f"No invitation created. {refused}")
        return redirect("console:detail", tenant_code=tenant.code)
    messages.success(request, "Re-consent invitation created. Send the customer the link.")
    return redirect("console:detail", tenant_code=tenant.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_groups(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """Set the groups a tenant is in (the tenant page's checkboxes)."""
    tenant = get_tenant_for_user(request, tenant_code)
    form = TenantGroupsForm(request.POST, tenant=tenant)
    if not form.is_valid():
        messages.error(request, "Choose groups from the list.")
        return redirect("console:detail", tenant_code=tenant.code)
    wanted = set(form.cleaned_data["groups"])
    current = set(tenant.tenant_groups.all())
    actor = actor_of(request)
    with transaction.atomic():
        for group in wanted - current:
            group.assign([tenant], actor=actor)
        for group in current - wanted:
            group.unassign([tenant], actor=actor)
    if wanted == current:
        messages.info(request, "No change: the tenant is in the same groups.")
    else:
        names = ", ".join(sorted(g.name for g in wanted)) or "no group"
        messages.success(request, f"{tenant} is now in: {names}.")
    return redirect("console:detail", tenant_code=tenant.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def assign_selected(request: HttpRequest) -> HttpResponse:
    """Put the tenants selected on the dashboard in a group."""
    selection = TenantSelectionForm(request.POST)
    form = GroupAssignForm(request.POST)
    if not selection.is_valid():
        messages.error(request, " ".join(selection.errors.get("tenant", ["Invalid selection."])))
        return redirect(reverse("console:dashboard") + _back_query(request))
    if not form.is_valid():
        messages.error(request, "Choose the group to put the selected tenants in.")
        return redirect(reverse("console:dashboard") + _back_query(request))
    group: TenantGroup = form.cleaned_data["assign_group"]
    tenants = list(visible_tenants(request).filter(code__in=selection.cleaned_data["tenant"]))
    added = group.assign(tenants, actor=actor_of(request))
    message = ngettext("%d tenant added to %s", "%d tenants added to %s", added) % (
        added,
        group.name,
    )
    if len(tenants) - added:
        already = len(tenants) - added
        message += ngettext("; %d was in it already", "; %d were in it already", already) % already
    messages.success(request, message + ".")
    return redirect(reverse("console:dashboard") + _back_query(request))


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_profile(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """Change the access profile a tenant is verified against. GET ?profile= shows what
    changes, resource by resource, and which new permissions its consent lacks; POST
    (confirmed) changes it and queues a re-verification."""
    tenant = get_tenant_for_user(request, tenant_code)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.error(request, "This tenant is offboarded: it is not verified any more.")
        return redirect("console:detail", tenant_code=tenant.code)
    data = request.POST if request.method == "POST" else request.GET
    chosen = data.get("profile") or ""
    form = ConfirmForm(request.POST or None)
    current = tenant.profile
    if chosen and chosen not in profiles.PROFILES:
        messages.error(request, "Choose a profile from the list.")
        return redirect("console:tenant_profile", tenant_code=tenant.code)
    new = profiles.get(chosen) if chosen else None
    latest = tenant.verifications.filter(state=Verification.State.DONE).first()
    lacking, unknown = (
        profiles.not_yet_granted(new, latest.results if latest else None) if new else ({}, [])
    )
    if request.method == "POST" and new is not None and form.is_valid():
        actor = actor_of(request)
        with transaction.atomic():
            changed = tenant.change_profile(new.key, actor=actor)
            if changed:
                enqueue_verification(tenant, Verification.Trigger.MANUAL, actor)
        if not changed:
            messages.info(request, f"The tenant already has the profile {new.name}.")
        elif lacking:
            missing = ", ".join(p for perms in lacking.values() for p in perms)
            messages.warning(
                request,
                f"Profile changed to {new.name}; a re-verification is queued. The tenant's "
                f"consent lacks {missing}: it will be incomplete until the customer consents "
                "again. Create the re-consent invitation below and send it.",
            )
        else:
            messages.success(
                request, f"Profile changed to {new.name}; a re-verification is queued."
            )
        return redirect("console:detail", tenant_code=tenant.code)
    return render(
        request,
        "console/tenant_profile.html",
        {
            "tenant": tenant,
            "form": form,
            "current": current,
            "new": new,
            "choices": [p for p in profiles.PROFILES.values() if p.key != current.key],
            "changes": [
                {"change": c, "title": clouds.TITLES.get(c.resource, c.resource)}
                for c in profiles.changes(current, new)
            ]
            if new
            else [],
            "lacking": {clouds.TITLES.get(k, k): v for k, v in lacking.items()},
            "unknown": [clouds.TITLES.get(k, k) for k in unknown],
        },
        status=400 if request.method == "POST" else 200,
    )
