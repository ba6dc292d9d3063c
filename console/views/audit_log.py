"""The audit trail, for admins: filtered, readable (tenant names beside their ids, details
as labelled values), and exported as CSV."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import roles
from audit.log import actor_of, record
from audit.models import AuditEvent
from console.access import visible_tenant_ids
from console.forms import AuditFilterForm
from console.views.exports import csv_cell, csv_download
from tenants.models import Tenant

PAGE_SIZE = 100
EXPORT_LIMIT = 50_000


def _day_start(day: object) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def action_filter(value: str) -> Q:
    """`invitation` or `invitation.*`: every action of that object; `invitation.created`:
    that action exactly."""
    value = value.strip()
    if value.endswith("*"):
        return Q(action__startswith=value[:-1])
    if "." not in value:
        return Q(action=value) | Q(action__startswith=value + ".")
    return Q(action=value)


def filtered_events(request: HttpRequest, form: AuditFilterForm) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    in_scope = visible_tenant_ids(request)
    if in_scope is not None:
        # Admins are unscoped; should the page ever open to scoped staff, it shows events of
        # their tenants only.
        events = events.filter(tenant_id__in=in_scope)
    if form.is_valid():
        data = form.cleaned_data
        if data["action"]:
            events = events.filter(action_filter(data["action"]))
        if data["outcome"]:
            events = events.filter(outcome=data["outcome"])
        if data["actor"]:
            events = events.filter(actor__icontains=data["actor"].strip())
        if data["tenant"]:
            events = events.filter(tenant_id=data["tenant"])
        if data["since"]:
            events = events.filter(at__gte=_day_start(data["since"]))
        if data["until"]:
            events = events.filter(at__lt=_day_start(data["until"]) + timedelta(days=1))
    return events


def _labelled(detail: object) -> list[tuple[str, object]]:
    if not isinstance(detail, dict):
        return []
    return [(str(key).replace("_", " "), value) for key, value in detail.items()]


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit trail, newest first, filtered (times are UTC)."""
    form = AuditFilterForm(request.GET)
    page = Paginator(filtered_events(request, form), PAGE_SIZE).get_page(request.GET.get("page"))
    # The tenants the page names, in one query: their names beside the ids, and a link.
    ids = {e.tenant_id for e in page.object_list if e.tenant_id}
    tenants = {t.tenant_id: t for t in Tenant.objects.filter(tenant_id__in=ids)}
    rows = [
        {"event": e, "tenant": tenants.get(e.tenant_id), "detail": _labelled(e.detail)}
        for e in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    # The actions that exist, for the filter's suggestions (one small query, indexed), and
    # each object's prefix.
    actions = list(
        AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    )
    prefixes = sorted({a.split(".", 1)[0] + ".*" for a in actions if "." in a})
    return render(
        request,
        "console/audit_log.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "query": query.urlencode(),
            "actions": [*prefixes, *actions],
        },
    )


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def audit_log_export(request: HttpRequest) -> HttpResponse:
    """The filtered trail as CSV (at most EXPORT_LIMIT events, newest first); exporting is
    itself audited (`audit_log.exported`)."""
    form = AuditFilterForm(request.GET)
    events = filtered_events(request, form)[:EXPORT_LIMIT]
    count = events.count()
    record(
        "audit_log.exported",
        AuditEvent.Outcome.SUCCESS,
        actor=actor_of(request),
        detail={"rows": str(count), "filters": request.GET.urlencode()[:200] or "none"},
    )
    names = dict(Tenant.objects.values_list("tenant_id", "display_name"))
    return csv_download(
        "audit-log.csv",
        ["at", "actor", "action", "outcome", "tenant_id", "tenant", "detail", "correlation_id"],
        (
            [
                e.at.isoformat(),
                csv_cell(e.actor),
                e.action,
                e.outcome,
                str(e.tenant_id or ""),
                csv_cell(names.get(e.tenant_id, "")),
                csv_cell("; ".join(f"{k}={v}" for k, v in (e.detail or {}).items())),
                str(e.correlation_id),
            ]
            for e in events.iterator()
        ),
    )
