from django.contrib import admin

from tenants.models import PlatformAlert, Tenant, Verification


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Break-glass view; staff change tenants through the console, which audits."""

    list_display = ["display_name", "tenant_id", "status", "status_since", "last_checked_at"]
    list_filter = ["status", "access_profile"]
    search_fields = ["display_name", "primary_domain", "=tenant_id"]
    readonly_fields = [f.name for f in Tenant._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Verification)
class VerificationAdmin(admin.ModelAdmin):
    list_display = ["tenant", "trigger", "state", "outcome", "diagnosis", "created_at"]
    list_filter = ["state", "outcome", "trigger"]
    readonly_fields = [f.name for f in Verification._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(PlatformAlert)
class PlatformAlertAdmin(admin.ModelAdmin):
    list_display = ["title", "key", "opened_at", "last_seen_at", "resolved_at"]
    readonly_fields = [f.name for f in PlatformAlert._meta.fields]
