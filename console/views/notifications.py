"""Notification destinations (admins only): list, add, edit, enable or disable, delete,
send a test, and each destination's delivery log with redelivery."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import roles
from audit.log import actor_of
from console.forms import ConfirmForm, DeliveryFilterForm, DestinationForm
from notifications.delivery import redeliver, send
from notifications.models import EVENT_TYPES, Attempt, Delivery, Destination

PAGE_SIZE = 50


def _destination(code: uuid.UUID) -> Destination:
    return get_object_or_404(Destination, code=code)


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_list(request: HttpRequest) -> HttpResponse:
    destinations = list(Destination.objects.all())
    for destination in destinations:
        destination.last = destination.deliveries.select_related("event").first()
    return render(
        request,
        "console/notifications/list.html",
        {"destinations": destinations, "event_types": EVENT_TYPES},
    )


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_create(request: HttpRequest) -> HttpResponse:
    form = DestinationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            destination = Destination.objects.add(
                kind=data["kind"],
                name=data["name"],
                target=data["target"],
                secret=data.get("secret") or "",
                event_types=data["event_types"],
                access_profiles=data["access_profiles"],
                daily_digest=data["daily_digest"],
                actor=actor_of(request),
            )
        except ValidationError as exc:  # the address changed between form and save
            form.add_error(None, exc)
        else:
            # The secret is shown on this one response (never cached), never again.
            return render(
                request,
                "console/notifications/created.html",
                {
                    "destination": destination,
                    "show_secret": destination.kind == Destination.Kind.WEBHOOK
                    and not data.get("secret"),
                },
            )
    return render(
        request,
        "console/notifications/form.html",
        {"form": form, "destination": None},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_edit(request: HttpRequest, destination_code: uuid.UUID) -> HttpResponse:
    destination = _destination(destination_code)
    form = DestinationForm(request.POST or None, instance=destination)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form.fields}
        destination.refresh_from_db()
        try:
            destination.change(actor=actor_of(request), **fields)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Destination saved.")
            return redirect("console:notification_destination", destination_code=destination.code)
    return render(
        request,
        "console/notifications/form.html",
        {"form": form, "destination": destination},
        status=400 if request.method == "POST" else 200,
    )


@require_GET
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_detail(request: HttpRequest, destination_code: uuid.UUID) -> HttpResponse:
    """The delivery log: every message to this destination and the answer to each attempt."""
    destination = _destination(destination_code)
    form = DeliveryFilterForm(request.GET)
    deliveries = destination.deliveries.select_related("event").prefetch_related(
        Prefetch("attempt_log", queryset=Attempt.objects.order_by("at", "pk"))
    )
    if form.is_valid():
        if form.cleaned_data["status"]:
            deliveries = deliveries.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["type"]:
            deliveries = deliveries.filter(event__type=form.cleaned_data["type"])
    page = Paginator(deliveries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/notifications/detail.html",
        {
            "destination": destination,
            "form": form,
            "page": page,
            "query": query.urlencode(),
        },
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_test(request: HttpRequest, destination_code: uuid.UUID) -> HttpResponse:
    destination = _destination(destination_code)
    if not destination.enabled:
        messages.error(request, "This destination is disabled: enable it, then send a test.")
        return redirect("console:notification_destination", destination_code=destination.code)
    delivery = send(str(destination.send_test(actor=actor_of(request)).code))
    if delivery is not None and delivery.status == Delivery.Status.DELIVERED:
        messages.success(
            request, f"Test delivered: the receiver answered {delivery.last_status_code}."
        )
    elif delivery is not None:
        answer = delivery.last_status_code or delivery.last_error
        then = (
            "It is retried with backoff; the log below shows each attempt."
            if delivery.status == Delivery.Status.PENDING
            else "It is not retried: fix the destination and send another test."
        )
        messages.error(request, f"Test not delivered ({answer}). {then}")
    return redirect("console:notification_destination", destination_code=destination.code)


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_toggle(request: HttpRequest, destination_code: uuid.UUID) -> HttpResponse:
    destination = _destination(destination_code)
    enable = not destination.enabled
    destination.change(actor=actor_of(request), enabled=enable)
    messages.success(
        request,
        "Destination enabled: it receives new events."
        if enable
        else "Destination disabled: it receives nothing until enabled again.",
    )
    return redirect("console:notification_destination", destination_code=destination.code)


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def destination_delete(request: HttpRequest, destination_code: uuid.UUID) -> HttpResponse:
    destination = _destination(destination_code)
    form = ConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        destination.remove(actor=actor_of(request))
        messages.success(request, f"Destination {destination.name} deleted, with its delivery log.")
        return redirect("console:notifications")
    return render(
        request,
        "console/notifications/delete.html",
        {"destination": destination, "form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def delivery_redeliver(
    request: HttpRequest, destination_code: uuid.UUID, delivery_code: uuid.UUID
) -> HttpResponse:
    destination = _destination(destination_code)
    delivery = get_object_or_404(destination.deliveries.select_related("event"), code=delivery_code)
    redeliver(delivery, actor=actor_of(request))
    messages.success(request, "Queued for delivery again, with the same webhook-id.")
    return redirect("console:notification_destination", destination_code=destination.code)
