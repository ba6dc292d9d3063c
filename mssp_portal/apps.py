from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "mssp_portal"
    verbose_name = "MSSP Portal"

    def ready(self) -> None:
        from mssp_portal import checks  # noqa: F401  (registers the system checks)
