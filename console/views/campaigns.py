"""Re-consent campaigns (admins): start one from the dashboard's banner, follow it to the
end, remind the customers still pending, export it."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from audit.log import actor_of, record
from audit.models import AuditEvent
from consent import campaigns
from consent.models import Campaign, NothingToAsk
from consent.tasks import populate_campaign, send_invitation_emails
from console.views.exports import csv_cell, csv_download
from tenants import profiles


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def campaign_list(request: HttpRequest) -> HttpResponse:
    rows = []
    for campaign in Campaign.objects.all()[:50]:
        _members, counts = campaigns.progress(campaign)
        rows.append({"campaign": campaign, "counts": counts, "total": sum(counts.values())})
    return render(
        request,
        "console/campaigns/list.html",
        {"rows": rows, "banners": campaigns.banners(), "profiles": profiles.PROFILES},
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def campaign_start(request: HttpRequest) -> HttpResponse:
    profile = request.POST.get("profile", "")
    if profile and profile not in profiles.PROFILES:
        messages.error(request, "Choose a profile from the list.")
        return redirect("console:campaigns")
    email = request.POST.get("email") == "on"
    try:
        with transaction.atomic():
            campaign = Campaign.objects.open(
                actor=actor_of(request), access_profile=profile, email=email
            )
            code = str(campaign.code)
            transaction.on_commit(lambda: populate_campaign.enqueue(code))
    except NothingToAsk as nothing:
        messages.info(request, str(nothing))
        return redirect("console:campaigns")
    text = ngettext(
        "Campaign started for %(n)d tenant", "Campaign started for %(n)d tenants", campaign.total
    ) % {"n": campaign.total}
    text += ": their invitations are being prepared"
    text += (
        ", and emailed to the contacts that have one."
        if email
        else ". Send each customer their link, or remind them by email from this page."
    )
    messages.success(request, text)
    return redirect("console:campaign", campaign_code=campaign.code)


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def campaign_detail(request: HttpRequest, campaign_code: uuid.UUID) -> HttpResponse:
    campaign = get_object_or_404(Campaign, code=campaign_code)
    rows, counts = campaigns.progress(campaign)
    total = len(rows)
    done = counts[campaigns.State.VERIFIED]
    return render(
        request,
        "console/campaigns/detail.html",
        {
            "campaign": campaign,
            "rows": rows,
            "counts": counts,
            "total": total,
            "done": done,
            "percent": round(100 * done / total) if total and campaign.ready else 0,
            "states": campaigns.State,
            "pending_with_contact": len(campaigns.to_remind(rows)),
        },
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def campaign_remind(request: HttpRequest, campaign_code: uuid.UUID) -> HttpResponse:
    campaign = get_object_or_404(Campaign, code=campaign_code)
    actor = actor_of(request)
    rows, _counts = campaigns.progress(campaign)
    codes = [str(invitation.code) for invitation in campaigns.to_remind(rows)]
    sent = len(codes)
    with transaction.atomic():
        if codes:
            transaction.on_commit(lambda: send_invitation_emails.enqueue(codes, actor))
            Campaign.objects.filter(pk=campaign.pk).update(last_reminder_at=timezone.now())
        record(
            "campaign.reminded",
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            detail={"campaign": campaign.code, "reminders": str(sent)},
        )
    if sent:
        messages.success(
            request,
            ngettext(
                "Reminding %(n)d pending customer by email.",
                "Reminding %(n)d pending customers by email.",
                sent,
            )
            % {"n": sent},
        )
    else:
        messages.info(request, "No pending customer has a contact email: nothing sent.")
    return redirect("console:campaign", campaign_code=campaign.code)


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def campaign_export(request: HttpRequest, campaign_code: uuid.UUID) -> HttpResponse:
    campaign = get_object_or_404(Campaign, code=campaign_code)
    rows, _counts = campaigns.progress(campaign)
    record(
        "campaign.exported",
        AuditEvent.Outcome.SUCCESS,
        actor=actor_of(request),
        detail={"campaign": campaign.code, "rows": str(len(rows))},
    )
    return csv_download(
        f"campaign-{campaign.short_id}.csv",
        ["tenant_id", "customer_name", "missing", "state", "contact_email", "emailed_at"],
        (
            [
                str(row.member.tenant.tenant_id),
                csv_cell(row.member.tenant.display_name),
                " ".join(row.member.missing),
                row.state,
                csv_cell(invitation.contact_email if invitation else ""),
                invitation.emailed_at.isoformat() if invitation and invitation.emailed_at else "",
            ]
            for row in rows
            for invitation in [row.member.invitation]
        ),
    )
