from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        # Connects the failed-sign-in receiver that feeds the throttle.
        from accounts import backends  # noqa: F401
