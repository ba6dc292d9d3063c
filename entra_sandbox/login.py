"""The browser pages (admin consent, sign-in) on the plain-http login listener."""

from __future__ import annotations

from .routing import Route


def routes() -> list[Route]:
    return []
