from django.apps import AppConfig


class ConsentConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "consent"

    def ready(self) -> None:
        # The daily digest listens to the scheduler's tick.
        from consent import digest  # noqa: F401
