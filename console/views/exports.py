"""The fleet for machines and spreadsheets: CSV export and the JSON status endpoint."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import roles
from accounts.decorators import staff_or_token_required
from accounts.models import ApiToken
from audit.log import actor_of, record
from audit.models import AuditEvent
from console.access import visible_tenants
from console.forms import DashboardFilterForm
from console.views.dashboard import filtered_tenants, groups_for_filter, status_counts
from tenants.models import PlatformAlert

# (CSV header, Tenant attribute) in column order; the JSON status API uses the same fields.
CSV_COLUMNS = [
    ("tenant_id", "tenant_id"),
    ("name", "display_name"),
    ("domain", "primary_domain"),
    ("status", "status"),
    ("status_since", "status_since"),
    ("stale_since", "stale_since"),
    ("last_checked_at", "last_checked_at"),
    ("last_verified_at", "last_verified_at"),
    ("access_profile", "access_profile"),
    ("diagnosis", "diagnosis"),
    ("offboarded_at", "offboarded_at"),
    ("contact_name", "contact_name"),
    ("contact_email", "contact_email"),
]
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A spreadsheet-safe cell: formula-looking text gets a leading apostrophe (OWASP's
    CSV injection advice), so it is shown as text and never evaluated."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_download(filename: str, header: list[str], rows: Iterable[list[object]]) -> HttpResponse:
    """A CSV attachment, streamed row by row (an export of 50,000 audit events is never one
    string in memory), never cached. Cells are the caller's, already made spreadsheet-safe
    with `csv_cell` where they carry text from outside."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def export_csv(request: HttpRequest) -> HttpResponse:
    """The tenant list (with the dashboard's filters) as CSV, streamed."""
    form = DashboardFilterForm(request.GET, groups=groups_for_filter(request))
    tenants = filtered_tenants(form, visible_tenants(request))
    record(
        "tenants.exported",
        AuditEvent.Outcome.SUCCESS,
        actor=actor_of(request),
        detail={"filter": request.GET.urlencode()},
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return csv_download(
        f"tenants-{stamp}.csv",
        [header for header, _ in CSV_COLUMNS],
        (
            [csv_cell(getattr(tenant, name)) for _, name in CSV_COLUMNS]
            for tenant in tenants.iterator(chunk_size=1000)
        ),
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


@require_GET
@staff_or_token_required(ApiToken.Scope.STATUS_READ)
def status_json(request: HttpRequest) -> HttpResponse:
    """Tenant statuses for monitoring systems (staff session or an API token)."""
    alerts = [
        {
            "key": alert.key,
            "title": alert.title,
            "opened_at": alert.opened_at.isoformat(),
            "last_seen_at": alert.last_seen_at.isoformat(),
        }
        for alert in PlatformAlert.objects.open()
    ]
    fields = [
        "tenant_id",
        "display_name",
        "primary_domain",
        "status",
        "status_since",
        "stale_since",
        "last_checked_at",
        "last_verified_at",
        "diagnosis",
    ]
    visible = visible_tenants(request)
    tenants = [
        {
            "tenant_id": str(t["tenant_id"]),
            "name": t["display_name"],
            "domain": t["primary_domain"],
            "status": t["status"],
            "status_since": _iso(t["status_since"]),
            "stale_since": _iso(t["stale_since"]),
            "last_checked_at": _iso(t["last_checked_at"]),
            "last_verified_at": _iso(t["last_verified_at"]),
            "diagnosis": t["diagnosis"],
        }
        for t in visible.order_by("tenant_id").values(*fields).iterator(chunk_size=2000)
    ]
    response = JsonResponse(
        {
            "generated_at": timezone.now().isoformat(),
            "counts": status_counts(visible),
            "platform_alerts": alerts,
            "tenants": tenants,
        }
    )
    response["Cache-Control"] = "no-store"
    return response
