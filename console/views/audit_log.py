"""The audit trail, for admins."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import roles
from audit.models import AuditEvent
from console.access import visible_tenant_ids
from console.forms import AuditFilterForm

PAGE_SIZE = 100


def _day_start(day: object) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit trail, newest first, filtered (times are UTC)."""
    form = AuditFilterForm(request.GET)
    events = AuditEvent.objects.all()
    in_scope = visible_tenant_ids(request)
    if in_scope is not None:
        # Admins are unscoped; should the page ever open to scoped staff, it shows events of
        # their tenants only.
        events = events.filter(tenant_id__in=in_scope)
    if form.is_valid():
        data = form.cleaned_data
        if data["action"]:
            events = events.filter(action=data["action"].strip())
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
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # The actions that exist, for the filter's suggestions (one small query, indexed).
    actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
    return render(
        request,
        "console/audit_log.html",
        {"form": form, "page": page, "query": query.urlencode(), "actions": list(actions)},
    )
