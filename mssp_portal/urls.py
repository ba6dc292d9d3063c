from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("tenants.urls")),
    path("consent/", include("consent.urls")),
    path("accounts/", include("accounts.urls")),
    path("audit/", include("audit.urls")),
    path("admin/", admin.site.urls),
]
