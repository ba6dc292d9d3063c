"""The staff console: dashboard, tenant page, invitations, re-verify, offboard, exports.

Every view states its access in its decorator stack: `accounts.operate` to read,
`accounts.administer` to act. tests/staff/test_access.py walks the URLconf and fails
for a view that lets the wrong person in.
"""

from __future__ import annotations

import contextlib
import csv
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from accounts.decorators import staff_or_token_required
from accounts.models import ApiToken
from audit.log import actor_of, record
from audit.models import AuditEvent
from consent import links
from consent.forms import InvitationForm
from consent.models import Invitation
from mssp_portal import clouds
from tenants import profiles
from tenants.forms import (
    ATTENTION,
    SORTS,
    STALE,
    ConfirmForm,
    DashboardFilterForm,
    InvitationFilterForm,
    TenantSelectionForm,
)
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.tasks import enqueue_verification

PAGE_SIZE = 50
HISTORY_SIZE = 25
TRAIL_SIZE = 50


def _get_tenant_for_user(request: HttpRequest, tenant_code: uuid.UUID) -> Tenant:
    """The tenant with this public code. Every staff member sees every tenant (the portal
    has no per-customer scoping of staff yet); unknown codes are 404."""
    return get_object_or_404(Tenant, code=tenant_code)


def _get_invitation_for_user(request: HttpRequest, invitation_code: uuid.UUID) -> Invitation:
    return get_object_or_404(Invitation.objects.select_related("tenant"), code=invitation_code)


# --- Diagnosis ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Explanation:
    title: str
    meaning: str = ""
    remediation: list[str] = field(default_factory=list)
    customer_text: str = ""


def _catalogue() -> Any:
    # The verification engine's diagnosis catalogue (tenants.verification.diagnosis).
    try:
        from tenants.verification import diagnosis
    except ImportError:
        return None
    return diagnosis


def short_diagnosis(key: str) -> str:
    """The one-line title of a diagnosis key, for tables."""
    if not key:
        return ""
    catalogue = _catalogue()
    if catalogue is not None:
        try:
            return catalogue.get(key).title
        except (KeyError, LookupError):
            pass
    return key.replace("_", " ").capitalize()


def explanation_for(tenant: Tenant, verification: Verification | None) -> Any:
    """What the latest finished verification means and what to do (title, meaning,
    remediation steps, text for the customer)."""
    if verification is None:
        return None
    catalogue = _catalogue()
    if catalogue is not None:
        return catalogue.describe(verification)
    return _Explanation(title=short_diagnosis(verification.diagnosis or verification.outcome))


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
        probe = result.get("probe") or {}
        rows.append(
            {
                "key": requirement.resource,
                "title": clouds.TITLES.get(requirement.resource, requirement.resource),
                "required": list(requirement.permissions),
                "rbac_role": requirement.rbac_role,
                "granted": result.get("roles_seen"),
                "missing": result.get("roles_missing") or [],
                "token": result.get("token"),
                "error_code": result.get("error_code") or "",
                "tid_matches": result.get("tid_matches"),
                "probe": probe,
                "diagnosis": short_diagnosis(result.get("diagnosis") or ""),
                "checked": bool(result),
            }
        )
    return rows


# --- Dashboard -----------------------------------------------------------------------------


def _valid_filters(form: DashboardFilterForm) -> dict[str, Any]:
    """The filter fields that are valid: a hand-edited bad ?sort= falls back to the default
    sort without dropping the search or the status filter beside it."""
    form.is_valid()
    return form.cleaned_data


def _filtered_tenants(form: DashboardFilterForm) -> QuerySet[Tenant]:
    tenants = Tenant.objects.all()
    data = _valid_filters(form)
    q = data.get("q", "")
    if q:
        match = Q(display_name__icontains=q) | Q(primary_domain__icontains=q)
        with contextlib.suppress(ValueError):
            match |= Q(tenant_id=uuid.UUID(q))
        tenants = tenants.filter(match)
    status = data.get("status", "")
    if status == STALE:
        tenants = tenants.filter(stale_since__isnull=False)
    elif status == ATTENTION:
        tenants = tenants.filter(
            status__in=[Tenant.Status.INCOMPLETE, Tenant.Status.NO_ACCESS]
        ) | tenants.filter(stale_since__isnull=False)
    elif status:
        tenants = tenants.filter(status=status)
    return tenants.order_by(*SORTS.get(data.get("sort") or "", SORTS["name"]))


def _dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the dashboard shows, in a fixed number of queries whatever the fleet size:
    counts (1), open verifications (1), alerts (1), page count (1), page rows (1)."""
    form = DashboardFilterForm(request.GET)
    tenants = _filtered_tenants(form).annotate(
        verifying=Exists(
            Verification.objects.filter(tenant=OuterRef("pk"), state__in=Verification.OPEN_STATES)
        )
    )
    paginator = Paginator(tenants, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    counts = Tenant.objects.aggregate(
        total=Count("pk"),
        stale=Count("pk", filter=Q(stale_since__isnull=False)),
        **{status: Count("pk", filter=Q(status=status)) for status in Tenant.Status.values},
    )
    progress = Verification.objects.filter(state__in=Verification.OPEN_STATES).aggregate(
        queued=Count("pk", filter=Q(state=Verification.State.QUEUED)),
        running=Count("pk", filter=Q(state=Verification.State.RUNNING)),
    )
    rows = [
        {"tenant": tenant, "diagnosis": short_diagnosis(tenant.diagnosis)}
        for tenant in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = request.GET.copy()
    sort_query.pop("sort", None)
    sort_query.pop("page", None)
    return {
        "form": form,
        "page": page,
        "rows": rows,
        "counts": counts,
        "status_cards": [(value, label, counts[value]) for value, label in Tenant.Status.choices],
        "progress": progress,
        "verifying": progress["queued"] + progress["running"],
        "alerts": list(PlatformAlert.objects.open()),
        "query": query.urlencode(),
        "live_query": request.GET.urlencode(),
        "sort_query": sort_query.urlencode(),
        "sort": _valid_filters(form).get("sort") or "name",
        "now": timezone.now(),
    }


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/dashboard.html", _dashboard_context(request))


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The dashboard's live region alone; static/js/refresh.js swaps it in while
    verifications run."""
    return render(request, "tenants/_dashboard_live.html", _dashboard_context(request))


# --- Tenant page ---------------------------------------------------------------------------


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def tenant_detail(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    tenant = _get_tenant_for_user(request, tenant_code)
    history = list(tenant.verifications.all()[:HISTORY_SIZE])
    latest = next((v for v in history if v.state == Verification.State.DONE), None)
    if latest is None and history:
        latest = tenant.verifications.filter(state=Verification.State.DONE).first()
    open_verification = next((v for v in history if v.is_open), None)
    invitations = list(
        Invitation.objects.filter(Q(tenant=tenant) | Q(expected_tenant_id=tenant.tenant_id))[:20]
    )
    reconsent = next(
        (i for i in invitations if i.is_usable and i.expected_tenant_id == tenant.tenant_id),
        None,
    )
    return render(
        request,
        "tenants/tenant_detail.html",
        {
            "tenant": tenant,
            "explanation": explanation_for(tenant, latest),
            "latest": latest,
            "resources": resource_rows(tenant, latest),
            "history": history,
            "open_verification": open_verification,
            "trail": AuditEvent.objects.filter(tenant_id=tenant.tenant_id)[:TRAIL_SIZE],
            "invitations": invitations,
            "reconsent": reconsent,
            "reconsent_url": links.invitation_url(reconsent) if reconsent else "",
            "needs_reconsent": tenant.status in (Tenant.Status.INCOMPLETE, Tenant.Status.NO_ACCESS),
            "can_administer": request.user.has_perm(roles.ADMINISTER),
            "app_client_id": settings.ENTRA_APP_CLIENT_ID,
        },
    )


# --- Re-verify -------------------------------------------------------------------------------


def _reverify(request: HttpRequest, tenant: Tenant) -> bool:
    """Queue a verification unless one is open; returns whether a new one was queued."""
    verification, created = enqueue_verification(
        tenant, Verification.Trigger.MANUAL, requested_by=actor_of(request)
    )
    record(
        "reverify",
        "success",
        actor=actor_of(request),
        tenant_id=tenant.tenant_id,
        detail={
            "verification": str(verification.code),
            "result": "queued" if created else "already_queued",
        },
    )
    return created


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_reverify(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    tenant = _get_tenant_for_user(request, tenant_code)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.error(request, "This tenant is offboarded: it is not verified any more.")
        return redirect("tenants:detail", tenant_code=tenant.code)
    if _reverify(request, tenant):
        messages.success(request, "Verification queued.")
    else:
        messages.info(request, "A verification of this tenant is already queued or running.")
    return redirect("tenants:detail", tenant_code=tenant.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def reverify_selected(request: HttpRequest) -> HttpResponse:
    form = TenantSelectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("tenant", ["Invalid selection."])))
        return redirect("tenants:dashboard")
    tenants = Tenant.objects.active().filter(code__in=form.cleaned_data["tenant"])
    queued = skipped = 0
    with transaction.atomic():
        for tenant in tenants:
            if _reverify(request, tenant):
                queued += 1
            else:
                skipped += 1
    messages.success(
        request, f"{queued} verification(s) queued, {skipped} already queued or running."
    )
    return redirect(reverse("tenants:dashboard") + _back_query(request))


def _back_query(request: HttpRequest) -> str:
    # Back to the dashboard view the admin came from (only our own filter fields).
    values = {k: v for k, v in _valid_filters(DashboardFilterForm(request.POST)).items() if v}
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
            "tenants/reverify_all.html",
            {"form": form, "count": active.count()},
            status=200 if request.method == "GET" else 400,
        )
    queued = skipped = 0
    with transaction.atomic():
        for tenant in active.iterator(chunk_size=500):
            verification, created = enqueue_verification(
                tenant, Verification.Trigger.MANUAL, requested_by=actor_of(request)
            )
            queued += created
            skipped += not created
    record(
        "reverify_all",
        "success",
        actor=actor_of(request),
        detail={"queued": queued, "already_queued": skipped},
    )
    messages.success(
        request, f"{queued} verification(s) queued, {skipped} already queued or running."
    )
    return redirect("tenants:dashboard")


# --- Offboarding -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_offboard(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST offboards: no more token requests for the tenant, its
    open invitations revoked, the record and its history kept for audit."""
    tenant = _get_tenant_for_user(request, tenant_code)
    form = ConfirmForm(request.POST or None)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.info(request, "This tenant is already offboarded.")
        return redirect("tenants:detail", tenant_code=tenant.code)
    if request.method == "GET" or not form.is_valid():
        return render(
            request,
            "tenants/offboard.html",
            {"tenant": tenant, "form": form},
            status=200 if request.method == "GET" else 400,
        )
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        fields = tenant.set_status(Tenant.Status.OFFBOARDED, diagnosis="")
        tenant.offboarded_at = timezone.now()
        tenant.save(update_fields=[*fields, "offboarded_at"])
        # Re-onboarding takes a new invitation: none of the old ones may be used again.
        withdrawn = Invitation.objects.filter(
            Q(tenant=tenant) | Q(expected_tenant_id=tenant.tenant_id),
            status=Invitation.Status.OPEN,
        ).update(status=Invitation.Status.REVOKED)
    record(
        "offboard",
        "success",
        actor=actor_of(request),
        tenant_id=tenant.tenant_id,
        detail={"invitations_revoked": withdrawn},
    )
    messages.success(request, f"{tenant} is offboarded. Send the customer the steps below.")
    return redirect("tenants:detail", tenant_code=tenant.code)


# --- Invitations -------------------------------------------------------------------------------


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_list(request: HttpRequest) -> HttpResponse:
    form = InvitationFilterForm(request.GET)
    invitations = Invitation.objects.select_related("tenant")
    status = form.cleaned_data.get("status") if form.is_valid() else ""
    now = timezone.now()
    if status == "usable":
        invitations = invitations.usable()
    elif status == "expired":
        invitations = invitations.filter(status=Invitation.Status.OPEN, expires_at__lte=now)
    elif status:
        invitations = invitations.filter(status=status)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "tenants/invitation_list.html",
        {"form": form, "page": page, "status": status, "query": query.urlencode()},
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_create(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        expected = data["tenant"]
        invitation = Invitation.objects.create(
            customer_name=data["customer_name"],
            expected_tenant_id=expected.tenant_id if expected else None,
            expected_domain=expected.domain if expected else "",
            access_profile=data["access_profile"],
            expires_at=timezone.now() + timedelta(days=data["days"]),
            created_by=actor_of(request),
        )
        record(
            "invitation_create",
            "success",
            actor=actor_of(request),
            tenant_id=invitation.expected_tenant_id,
            detail={
                "invitation": str(invitation.code),
                "customer": invitation.customer_name,
                "profile": invitation.access_profile,
            },
        )
        messages.success(request, "Invitation created. Send the customer the link below.")
        return redirect("tenants:invitation", invitation_code=invitation.code)
    return render(
        request,
        "tenants/invitation_create.html",
        {"form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def tenant_invite(request: HttpRequest, tenant_code: uuid.UUID) -> HttpResponse:
    """A re-consent invitation for a known tenant (bound to it), e.g. after a permission
    was added to the app or the customer removed a grant."""
    tenant = _get_tenant_for_user(request, tenant_code)
    if tenant.status == Tenant.Status.OFFBOARDED:
        messages.error(
            request, "This tenant is offboarded. Create a new invitation to onboard it again."
        )
        return redirect("tenants:detail", tenant_code=tenant.code)
    invitation = Invitation.objects.create(
        customer_name=tenant.display_name or tenant.primary_domain or str(tenant.tenant_id),
        expected_tenant_id=tenant.tenant_id,
        expected_domain=tenant.primary_domain,
        access_profile=tenant.access_profile,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_DEFAULT_DAYS),
        created_by=actor_of(request),
        tenant=tenant,
    )
    record(
        "invitation_create",
        "success",
        actor=actor_of(request),
        tenant_id=tenant.tenant_id,
        detail={"invitation": str(invitation.code), "kind": "re-consent"},
    )
    messages.success(request, "Re-consent invitation created. Send the customer the link.")
    return redirect("tenants:detail", tenant_code=tenant.code)


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_detail(request: HttpRequest, invitation_code: uuid.UUID) -> HttpResponse:
    invitation = _get_invitation_for_user(request, invitation_code)
    return render(
        request,
        "tenants/invitation_detail.html",
        {
            "invitation": invitation,
            "url": links.invitation_url(invitation),
            "tickets": invitation.tickets.order_by("-created_at")[:20],
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_revoke(request: HttpRequest, invitation_code: uuid.UUID) -> HttpResponse:
    """GET asks for confirmation; POST revokes (the link stops working at once)."""
    invitation = _get_invitation_for_user(request, invitation_code)
    form = ConfirmForm(request.POST or None)
    if request.method == "GET" or not form.is_valid():
        return render(
            request,
            "tenants/invitation_revoke.html",
            {"invitation": invitation, "form": form},
            status=200 if request.method == "GET" else 400,
        )
    if invitation.revoke():
        record(
            "invitation_revoke",
            "success",
            actor=actor_of(request),
            tenant_id=invitation.expected_tenant_id,
            detail={"invitation": str(invitation.code)},
        )
        messages.success(request, "Invitation revoked: its link no longer works.")
    else:
        messages.info(request, "This invitation was already used or revoked.")
    return redirect("tenants:invitation", invitation_code=invitation.code)


# --- Exports -------------------------------------------------------------------------------

CSV_COLUMNS = [
    "tenant_id",
    "name",
    "domain",
    "status",
    "status_since",
    "stale_since",
    "last_checked_at",
    "last_verified_at",
    "access_profile",
    "diagnosis",
    "offboarded_at",
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


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def export_csv(request: HttpRequest) -> HttpResponse:
    """The tenant list (with the dashboard's filters) as CSV, streamed."""
    form = DashboardFilterForm(request.GET)
    tenants = _filtered_tenants(form)
    record(
        "export_csv", "success", actor=actor_of(request), detail={"filter": request.GET.urlencode()}
    )
    writer = csv.writer(_Echo())

    def rows() -> Any:
        yield writer.writerow(CSV_COLUMNS)
        for t in tenants.iterator(chunk_size=1000):
            yield writer.writerow(
                [
                    csv_cell(v)
                    for v in (
                        t.tenant_id,
                        t.display_name,
                        t.primary_domain,
                        t.status,
                        t.status_since,
                        t.stale_since,
                        t.last_checked_at,
                        t.last_verified_at,
                        t.access_profile,
                        t.diagnosis,
                        t.offboarded_at,
                    )
                ]
            )

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="tenants-{stamp}.csv"'
    return response


@require_GET
@staff_or_token_required(ApiToken.Scope.STATUS_READ)
def status_json(request: HttpRequest) -> HttpResponse:
    """Tenant statuses for monitoring systems (staff session or an API token)."""
    counts = Tenant.objects.aggregate(
        total=Count("pk"),
        stale=Count("pk", filter=Q(stale_since__isnull=False)),
        **{status: Count("pk", filter=Q(status=status)) for status in Tenant.Status.values},
    )
    alerts = [
        {
            "key": alert.key,
            "title": alert.title,
            "opened_at": alert.opened_at.isoformat(),
            "last_seen_at": alert.last_seen_at.isoformat(),
        }
        for alert in PlatformAlert.objects.open()
    ]

    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    tenants = [
        {
            "tenant_id": str(t["tenant_id"]),
            "name": t["display_name"],
            "domain": t["primary_domain"],
            "status": t["status"],
            "status_since": iso(t["status_since"]),
            "stale_since": iso(t["stale_since"]),
            "last_checked_at": iso(t["last_checked_at"]),
            "last_verified_at": iso(t["last_verified_at"]),
            "diagnosis": t["diagnosis"],
        }
        for t in Tenant.objects.order_by("tenant_id")
        .values(
            "tenant_id",
            "display_name",
            "primary_domain",
            "status",
            "status_since",
            "stale_since",
            "last_checked_at",
            "last_verified_at",
            "diagnosis",
        )
        .iterator(chunk_size=2000)
    ]
    response = JsonResponse(
        {
            "generated_at": timezone.now().isoformat(),
            "counts": counts,
            "platform_alerts": alerts,
            "tenants": tenants,
        }
    )
    response["Cache-Control"] = "no-store"
    return response
