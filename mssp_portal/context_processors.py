from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, object]:
    # APP_NAME: the name Entra shows customers for the app (its display name), which the
    # customer pages tell them to look for; "" when not configured (the id is shown then).
    return {
        "MSSP_NAME": settings.MSSP_NAME,
        "APP_NAME": settings.ENTRA_APP_DISPLAY_NAME,
        "APP_CLIENT_ID": settings.ENTRA_APP_CLIENT_ID,
    }
