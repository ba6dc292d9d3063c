"""The tenant status dashboard and its live region."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import roles
from consent import campaigns
from console.access import is_scoped, scope_for, visible_tenants
from console.forms import ATTENTION, EVERYTHING, SORTS, STALE, DashboardFilterForm
from notifications.models import Delivery
from tenants.models import PlatformAlert, Tenant, TenantGroup, Verification

PAGE_SIZE = 50


def valid_filters(form: DashboardFilterForm) -> dict[str, Any]:
    """The filter fields that are valid: a hand-edited bad ?sort= falls back to the default
    sort without dropping the search or the status filter beside it."""
    form.is_valid()
    return form.cleaned_data


def filtered_tenants(form: DashboardFilterForm, tenants: QuerySet[Tenant]) -> QuerySet[Tenant]:
    """The tenants among `tenants` (the request's visible ones) the dashboard's filters
    select, in its sort order (also the CSV's)."""
    data = valid_filters(form)
    tenants = in_group(tenants, data.get("group"))
    q = data.get("q", "")
    if q:
        match = Q(display_name__icontains=q) | Q(primary_domain__icontains=q)
        with contextlib.suppress(ValueError):
            match |= Q(tenant_id=uuid.UUID(q))
        tenants = tenants.filter(match)
    status = data.get("status", "")
    if not status:
        tenants = tenants.exclude(status=Tenant.Status.OFFBOARDED)
    elif status == EVERYTHING:
        pass
    elif status == STALE:
        tenants = tenants.filter(stale_since__isnull=False)
    elif status == ATTENTION:
        tenants = tenants.filter(
            status__in=[Tenant.Status.INCOMPLETE, Tenant.Status.NO_ACCESS]
        ) | tenants.filter(stale_since__isnull=False)
    elif status:
        tenants = tenants.filter(status=status)
    return tenants.order_by(*SORTS.get(data.get("sort") or "", SORTS["name"]))


def in_group(tenants: QuerySet[Tenant], group: str | None) -> QuerySet[Tenant]:
    """The tenants of one group (by its code), or all of them without one."""
    if not group:
        return tenants
    members = TenantGroup.tenants.through.objects.filter(tenantgroup__code=group)
    return tenants.filter(pk__in=members.values("tenant_id"))


def status_counts(tenants: QuerySet[Tenant]) -> dict[str, int]:
    """Tenants per status, stale ones, the active ones (not offboarded) and the total, in one
    query."""
    return tenants.status_counts()


def _dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the dashboard shows, in a fixed number of queries whatever the fleet size:
    counts (1), open verifications (1), alerts (1), page count (1), page rows (1), the rows'
    latest definitive results (1), the last notification about each row (1)."""
    form = DashboardFilterForm(request.GET, groups=groups_for_filter(request))
    visible = visible_tenants(request)
    tenants = filtered_tenants(form, visible).annotate(
        verifying=Exists(
            Verification.objects.filter(tenant=OuterRef("pk"), state__in=Verification.OPEN_STATES)
        ),
        # The verification the status comes from (an inconclusive one changes no status).
        definitive=Subquery(
            Verification.objects.filter(tenant=OuterRef("pk"), outcome__in=DEFINITIVE)
            .order_by("-finished_at")
            .values("pk")[:1]
        ),
    )
    paginator = Paginator(tenants, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    # The cards count the group chosen (a pod's own overview), else every visible tenant.
    counts = status_counts(in_group(visible, valid_filters(form).get("group")))
    open_verifications = Verification.objects.filter(state__in=Verification.OPEN_STATES)
    if is_scoped(request):
        open_verifications = open_verifications.filter(tenant__in=visible)
    progress = open_verifications.aggregate(
        queued=Count("pk", filter=Q(state=Verification.State.QUEUED)),
        running=Count("pk", filter=Q(state=Verification.State.RUNNING)),
    )
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = request.GET.copy()
    sort_query.pop("sort", None)
    sort_query.pop("page", None)
    return {
        "form": form,
        "page": page,
        "rows": _rows(page.object_list),
        "counts": counts,
        "status_cards": [(value, label, counts[value]) for value, label in Tenant.Status.choices],
        "progress": progress,
        "verifying": progress["queued"] + progress["running"],
        "alerts": list(PlatformAlert.objects.open()),
        "query": query.urlencode(),
        "live_query": request.GET.urlencode(),
        "sort_query": sort_query.urlencode(),
        "sort": valid_filters(form).get("sort") or "name",
        "now": timezone.now(),
        "scoped": is_scoped(request),
        "groups": form.fields["group"].choices[1:],
    }


DEFINITIVE = (
    Verification.Outcome.VERIFIED,
    Verification.Outcome.INCOMPLETE,
    Verification.Outcome.NO_ACCESS,
)


def _rows(tenants: list[Tenant]) -> list[dict[str, Any]]:
    """Each tenant with how many problems its status comes from beyond the one its
    diagnosis names (the table shows the first and "and N more"), and the last notification
    sent about it."""
    told = Delivery.objects.last_sent_about(t.tenant_id for t in tenants)
    results = dict(
        Verification.objects.filter(
            pk__in=[t.definitive for t in tenants if t.definitive]
        ).values_list("pk", "results")
    )
    rows = []
    for tenant in tenants:
        found = results.get(tenant.definitive) or {}
        problems = sum(
            1
            for result in (found.values() if isinstance(found, dict) else ())
            if isinstance(result, dict) and result.get("diagnosis") not in (None, "", "verified")
        )
        rows.append(
            {"tenant": tenant, "more": max(0, problems - 1), "told": told.get(tenant.tenant_id)}
        )
    return rows


def groups_for_filter(request: HttpRequest) -> list[TenantGroup]:
    """The groups the dashboard offers as a filter: all of them to unscoped staff; to a
    scoped operator, the "only" groups that grant their scope (any other would be an
    empty or misleading filter)."""
    scope = scope_for(request)
    groups = TenantGroup.objects.order_by("name")
    if scope.unscoped:
        return list(groups)
    return list(groups.filter(pk__in=scope.only or ()))


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    context = _dashboard_context(request)
    # Admins start re-consent campaigns from here; the banner is theirs (2 queries).
    context["reconsent_banners"] = (
        campaigns.banners() if request.user.has_perm(roles.ADMINISTER) else []
    )
    return render(request, "console/dashboard.html", context)


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The dashboard's live region alone; static/js/refresh.js swaps it in while
    verifications run."""
    return render(request, "console/_dashboard_live.html", _dashboard_context(request))
