"""Text that came from outside (query strings, Entra's error_description, customer names).

It is never trusted: templates autoescape it, and before it reaches a log line or an audit
record it passes through `for_log`, which keeps it on one line, visible and bounded.
"""

from __future__ import annotations

import unicodedata
import uuid

LOG_LIMIT = 1024


def for_log(value: object, limit: int = LOG_LIMIT) -> str:
    """One printable line: control, format (bidi, zero-width) and line-break characters are
    written as escapes, and the result is cut to `limit` characters."""
    text = str(value)
    out: list[str] = []
    for ch in text[: limit * 2]:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    cleaned = "".join(out)
    if len(cleaned) > limit:
        return cleaned[: limit - 1] + "…"
    return cleaned


def is_guid(value: str) -> bool:
    """Whether `value` parses as a GUID (any of the forms uuid.UUID accepts)."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
