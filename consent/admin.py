from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from audit import log as audit
from consent import links
from consent.models import ConsentTicket, Invitation


class ConsentTicketInline(admin.TabularInline):
    """Each "Grant admin consent" click and how its callback ended. The state hash is left
    out: it is of no use to a reader and the less it travels the better."""

    model = ConsentTicket
    fields = ["created_at", "expires_at", "expected_tenant_id", "used_at", "result", "tenant_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only: invitations are created with `manage.py create_invitation` (which looks
    domains up in Entra) and only ever revoked afterwards."""

    list_display = [
        "customer_name",
        "display_status",
        "expected_tenant_id",
        "access_profile",
        "expires_at",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "access_profile"]
    search_fields = ["customer_name", "expected_tenant_id", "expected_domain"]
    readonly_fields = [
        "code",
        "link",
        "customer_name",
        "expected_tenant_id",
        "expected_domain",
        "access_profile",
        "expires_at",
        "status",
        "created_by",
        "created_at",
        "used_at",
        "tenant",
    ]
    fields = readonly_fields
    inlines = [ConsentTicketInline]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Invitation link")
    def link(self, invitation: Invitation) -> str:
        return format_html("<code>{}</code>", links.invitation_url(invitation))

    @admin.action(description="Revoke selected open invitations")
    def revoke(self, request: HttpRequest, queryset: object) -> None:
        actor = audit.actor_of(request)
        revoked = sum(invitation.revoke(actor=actor) for invitation in queryset)
        self.message_user(request, f"Revoked {revoked} invitation(s).", messages.SUCCESS)
