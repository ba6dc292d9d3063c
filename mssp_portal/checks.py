"""System checks: a deployment with a missing or malformed Entra configuration fails at start.

Missing values are errors in production and warnings under DEBUG (so `runserver` still starts
for someone looking around); malformed values are errors everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

from mssp_portal import clouds
from mssp_portal.untrusted import is_guid


def _missing(id_: str, msg: str, hint: str) -> checks.CheckMessage:
    level = checks.Warning if settings.DEBUG else checks.Error
    return level(msg, hint=hint, id=id_)


@checks.register(checks.Tags.security, deploy=False)
def check_secret_key(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return [
            checks.Error(
                "SECRET_KEY is the development key while DEBUG is off.",
                hint="Set SECRET_KEY in the environment to a long random value.",
                id="mssp_portal.E001",
            )
        ]
    return []


@checks.register()
def check_entra(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if settings.ENTRA_CLOUD not in clouds.CLOUD_NAMES:
        errors.append(
            checks.Error(
                f"ENTRA_CLOUD={settings.ENTRA_CLOUD!r} is not a known cloud.",
                hint=f"Use one of: {', '.join(clouds.CLOUD_NAMES)}.",
                id="mssp_portal.E002",
            )
        )
    guids = [
        ("ENTRA_HOME_TENANT_ID", "the directory (tenant) id of the MSSP's home tenant", "E003"),
        ("ENTRA_APP_CLIENT_ID", "the application (client) id of the multi-tenant app", "E004"),
    ]
    if not settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE:
        guids.append(
            (
                "ENTRA_MANAGED_IDENTITY_CLIENT_ID",
                "the client id of the user-assigned managed identity",
                "E005",
            )
        )
    for name, what, code in guids:
        value = getattr(settings, name)
        if not value:
            errors.append(
                _missing(f"mssp_portal.{code}", f"{name} is not set.", f"Set it to {what}.")
            )
        elif not is_guid(value):
            errors.append(
                checks.Error(
                    f"{name} is not a GUID.",
                    hint=f"Set it to {what}, e.g. 00000000-0000-0000-0000-000000000000.",
                    id=f"mssp_portal.{code}",
                )
            )
    if settings.ENTRA_CLOUD == "sandbox":
        authority = settings.SANDBOX.get("authority", "")
        if urlsplit(authority).scheme != "https":
            errors.append(
                checks.Error(
                    "The sandbox cloud needs AZURE_AUTHORITY_HOST to be an https URL.",
                    hint="Source the env file that `python -m entra_sandbox serve` writes.",
                    id="mssp_portal.E006",
                )
            )
    base = urlsplit(settings.PORTAL_BASE_URL)
    if base.scheme not in {"http", "https"} or not base.netloc or base.path not in {"", "/"}:
        errors.append(
            checks.Error(
                "PORTAL_BASE_URL must be an origin such as https://portal.example.com.",
                hint="Redirect URIs registered on the app are built from it.",
                id="mssp_portal.E007",
            )
        )
    elif (
        not settings.DEBUG
        and base.scheme != "https"
        and base.hostname
        not in {
            "localhost",
            "127.0.0.1",
        }
    ):
        errors.append(
            checks.Error(
                "PORTAL_BASE_URL must use https outside local development.",
                hint="Entra accepts plain http redirect URIs for localhost only.",
                id="mssp_portal.E008",
            )
        )
    return errors
