from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("invite/<uuid:code>/", views.invitation, name="invitation"),
    path("invite/<uuid:code>/start/", views.start, name="start"),
    # Registered as the redirect URI of the app in Entra: it must never change.
    path("callback/", views.callback, name="callback"),
    path("landing/<uuid:code>/", views.landing, name="landing"),
]
