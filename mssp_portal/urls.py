"""The root URLconf: each app's URLs, included by dotted path (this package imports no app)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("console.urls")),
    path("consent/", include("consent.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "mssp_portal.errors.bad_request"
handler403 = "mssp_portal.errors.permission_denied"
handler404 = "mssp_portal.errors.page_not_found"
handler500 = "mssp_portal.errors.server_error"
