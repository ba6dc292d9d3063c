"""Tenant groups: list, create, edit (admins only). Which tenants a group holds is set on
the tenant page, from the dashboard's selection, and at invitation time."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts import roles
from audit.log import actor_of
from console.access import get_group_for_user
from console.forms import TenantGroupForm
from tenants.models import TenantGroup


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def group_list(request: HttpRequest) -> HttpResponse:
    groups = TenantGroup.objects.annotate(tenant_count=Count("tenants", distinct=True))
    # Without groups, what unmapped operators see (console.access) is all or nothing.
    everyone = settings.STAFF_UNMAPPED_SCOPE in ("auto", "all")
    return render(request, "console/group_list.html", {"groups": groups, "everyone": everyone})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def group_create(request: HttpRequest) -> HttpResponse:
    form = TenantGroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        actor = actor_of(request)
        group = TenantGroup.objects.create_group(
            name=data["name"], description=data["description"], scope=data["scope"], actor=actor
        )
        for object_id in data["entra_group_ids"]:
            group.map(actor=actor, entra_group=object_id)
        for role in data["app_roles"]:
            group.map(actor=actor, app_role=role)
        messages.success(
            request,
            f"Group “{group.name}” created. Add tenants to it on their pages or from the "
            "dashboard's selection.",
        )
        return redirect("console:group", group_code=group.code)
    return render(
        request,
        "console/group_form.html",
        {"form": form, "group": None},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def group_detail(request: HttpRequest, group_code: uuid.UUID) -> HttpResponse:
    """The group's tenants and mappings; POST saves its edited fields."""
    group = get_group_for_user(request, group_code)
    initial = {
        "name": group.name,
        "description": group.description,
        "scope": group.scope,
        "entra_group_ids": "\n".join(group.entra_group_ids),
        "app_roles": "\n".join(group.app_roles),
    }
    form = TenantGroupForm(request.POST or None, initial=initial, group=group)
    if request.method == "POST" and form.is_valid():
        changed = group.update(actor=actor_of(request), **form.cleaned_data)
        if changed:
            messages.success(request, f"Group “{group.name}” saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("console:group", group_code=group.code)
    return render(
        request,
        "console/group_form.html",
        {
            "form": form,
            "group": group,
            "tenants": group.tenants.order_by("display_name", "tenant_id")[:500],
            "tenant_count": group.tenants.count(),
            "members": group.members.order_by("username"),
        },
        status=400 if request.method == "POST" else 200,
    )
