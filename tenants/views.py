from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.models import Tenant


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/dashboard.html", {"tenants": Tenant.objects.all()[:50]})
