from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/live/", views.dashboard_live, name="dashboard_live"),
    path("tenants/export.csv", views.export_csv, name="export_csv"),
    path("tenants/reverify/", views.reverify_selected, name="reverify_selected"),
    path("tenants/reverify-all/", views.reverify_all, name="reverify_all"),
    path("tenants/<uuid:tenant_code>/", views.tenant_detail, name="detail"),
    path("tenants/<uuid:tenant_code>/reverify/", views.tenant_reverify, name="reverify"),
    path("tenants/<uuid:tenant_code>/offboard/", views.tenant_offboard, name="offboard"),
    path("tenants/<uuid:tenant_code>/invite/", views.tenant_invite, name="invite"),
    path("invitations/", views.invitation_list, name="invitations"),
    path("invitations/new/", views.invitation_create, name="invitation_create"),
    path("invitations/<uuid:invitation_code>/", views.invitation_detail, name="invitation"),
    path(
        "invitations/<uuid:invitation_code>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("api/status/", views.status_json, name="status_json"),
]
