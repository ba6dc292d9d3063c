"""Template filters of the staff console."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from tenants.verification import diagnosis

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """ "3 hours ago": one unit is enough in a table; the exact time goes in a title."""
    if not value:
        return ""
    if value > timezone.now():
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def diagnosis_title(key: str) -> str:
    """The one-line title of a diagnosis key, for tables ("" for none)."""
    return diagnosis.get(key).title if key else ""
