"""Template filters of the staff console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from tenants.verification import diagnosis

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """ "3 hours ago": one unit is enough in a table; the exact time goes in a title."""
    if not value:
        return ""
    if value > timezone.now() - timedelta(minutes=1):
        return "just now"  # not "0 minutes ago"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def when(value: datetime | None) -> str:
    """A relative time ("3 hours ago") with the absolute one on hover and for machines."""
    if not value:
        return ""
    exact = timezone.localtime(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, ago(value)
    )


@register.filter
def took(value: timedelta | None) -> str:
    """A verification's duration: milliseconds under a second ("0.0 s" says nothing)."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))} ms"
    return f"{seconds:.1f} s"


@register.filter
def diagnosis_title(key: str) -> str:
    """The one-line title of a diagnosis key, for tables ("" for none)."""
    return diagnosis.get(key).title if key else ""
