"""Django admin: local superusers only (accounts.middleware.AdminSiteGateMiddleware)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, LoginFailure, StaffIdentity


def _portal_sign_in(request: HttpRequest, extra_context: object = None) -> HttpResponse:
    # One password form for the whole site: the portal's, throttled and audited.
    return redirect_to_login(
        request.GET.get("next", reverse("admin:index")), reverse(settings.LOGIN_URL)
    )


admin.site.login = _portal_sign_in
# Second factors are enrolled by `manage.py break_glass enrol` only: one audited path, and
# django-otp's admin would show (and QR-encode) the secrets again.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
admin.site.site_header = "MSSP Portal — break-glass administration"


@admin.register(StaffIdentity)
class StaffIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "object_id", "roles", "last_sign_in_at"]
    readonly_fields = ["user", "tenant_id", "object_id", "roles", "last_sign_in_at"]
    search_fields = ["user__username", "object_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Identities come from Entra sign-ins only; every field is read-only, so an "add"
        # form would save an empty row (and fail on the required ids).
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "hint", "scope", "created_by", "created_at", "revoked_at"]
    # The hash is never shown or editable; tokens are issued from the portal's token page.
    exclude = ["token_hash"]
    readonly_fields = ["code", "hint", "scope", "created_by", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    list_display = ["at", "username", "ip"]
    list_filter = ["at"]
    search_fields = ["username", "ip"]
