from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by the portal and never edited."""

    list_display = ["at", "actor", "action", "outcome", "tenant_id", "correlation_id"]
    list_filter = ["outcome", "action"]
    search_fields = ["actor", "action", "=tenant_id", "=correlation_id"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
