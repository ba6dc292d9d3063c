"""Every staff page. The paths are the ones published since the first release."""

from django.urls import include, path

from console.views import (
    audit_log,
    campaigns,
    dashboard,
    exports,
    groups,
    imports,
    invitations,
    notifications,
    tenants,
)

app_name = "console"

tenant_urls = [
    path("", tenants.tenant_detail, name="detail"),
    path("reverify/", tenants.tenant_reverify, name="reverify"),
    path("offboard/", tenants.tenant_offboard, name="offboard"),
    path("invite/", tenants.tenant_invite, name="invite"),
    path("profile/", tenants.tenant_profile, name="tenant_profile"),
    path("groups/", tenants.tenant_groups, name="tenant_groups"),
]

invitation_urls = [
    path("", invitations.invitation_detail, name="invitation"),
    path("revoke/", invitations.invitation_revoke, name="invitation_revoke"),
    path("email/", invitations.invitation_email, name="invitation_email"),
]

destination_urls = [
    path("", notifications.destination_detail, name="notification_destination"),
    path("edit/", notifications.destination_edit, name="notification_edit"),
    path("test/", notifications.destination_test, name="notification_test"),
    path("toggle/", notifications.destination_toggle, name="notification_toggle"),
    path("delete/", notifications.destination_delete, name="notification_delete"),
    path(
        "deliveries/<uuid:delivery_code>/redeliver/",
        notifications.delivery_redeliver,
        name="notification_redeliver",
    ),
]

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("dashboard/live/", dashboard.dashboard_live, name="dashboard_live"),
    path("tenants/export.csv", exports.export_csv, name="export_csv"),
    path("tenants/reverify/", tenants.reverify_selected, name="reverify_selected"),
    path("tenants/reverify-all/", tenants.reverify_all, name="reverify_all"),
    path("tenants/assign-group/", tenants.assign_selected, name="assign_selected"),
    path("tenants/<uuid:tenant_code>/", include(tenant_urls)),
    path("invitations/", invitations.invitation_list, name="invitations"),
    path("invitations/new/", invitations.invitation_create, name="invitation_create"),
    path("invitations/export.csv", invitations.invitation_export, name="invitation_export"),
    path("invitations/email/", invitations.invitations_email_selected, name="invitations_email"),
    path("invitations/import/", imports.invitation_import, name="invitation_import"),
    path(
        "invitations/import/<uuid:import_id>/",
        imports.invitation_import_preview,
        name="invitation_import_preview",
    ),
    path("invitations/<uuid:invitation_code>/", include(invitation_urls)),
    path("groups/", groups.group_list, name="groups"),
    path("groups/new/", groups.group_create, name="group_create"),
    path("groups/<uuid:group_code>/", groups.group_detail, name="group"),
    path("api/status/", exports.status_json, name="status_json"),
    path("audit/", audit_log.audit_log, name="audit_log"),
    path("audit/export.csv", audit_log.audit_log_export, name="audit_log_export"),
    path("campaigns/", campaigns.campaign_list, name="campaigns"),
    path("campaigns/start/", campaigns.campaign_start, name="campaign_start"),
    path("campaigns/<uuid:campaign_code>/", campaigns.campaign_detail, name="campaign"),
    path(
        "campaigns/<uuid:campaign_code>/remind/", campaigns.campaign_remind, name="campaign_remind"
    ),
    path(
        "campaigns/<uuid:campaign_code>/export.csv",
        campaigns.campaign_export,
        name="campaign_export",
    ),
    path("notifications/", notifications.destination_list, name="notifications"),
    path("notifications/new/", notifications.destination_create, name="notification_create"),
    path("notifications/<uuid:destination_code>/", include(destination_urls)),
]
