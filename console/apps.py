from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """Every signed-in staff page (dashboard, tenant page, actions, invitations, exports,
    audit log, status API). Domain logic lives in the apps below; this app only shows it and
    calls their actions."""

    name = "console"
    default_auto_field = "django.db.models.BigAutoField"
