from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login, name="login"),
    path("login/start/", views.start, name="start"),
    # Registered on the app registration as a redirect URI: do not change once published.
    path("callback/", views.callback, name="callback"),
    path("break-glass/", views.break_glass, name="break_glass"),
    path("logout/", views.logout, name="logout"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/new/", views.token_create, name="token_create"),
    path("tokens/<uuid:token_code>/revoke/", views.token_revoke, name="token_revoke"),
]
