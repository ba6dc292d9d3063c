"""What a notification says, per kind of destination: the signed JSON payload for webhooks,
an Adaptive Card for Teams, Block Kit for Slack, a plain-text and an HTML part for email.

Every text comes from the event's data, which the apps below wrote as plain text (names the
customer controls included): chat formats get it escaped for their markup, email through
Django templates with autoescaping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.translation import ngettext

from notifications.models import (
    ALERT_OPENED,
    ALERT_RESOLVED,
    BREAK_GLASS_USED,
    DIGEST,
    INVITATION_EXPIRED_UNUSED,
    TENANT_ONBOARDED,
    TENANT_STALE,
    TENANT_STATUS_CHANGED,
    TEST,
    Event,
)


def status_words(status: object) -> str:
    """`no_access` → "no access": the API spelling, read aloud."""
    return str(status or "unknown").replace("_", " ")


@dataclass(frozen=True)
class Text:
    """A notification in words: a headline, what it means, what to do, and a link."""

    headline: str
    summary: str
    remediation: str
    url: str


def text(event: Event) -> Text:
    data = event.data
    name = str(data.get("customer_name") or data.get("tenant_id") or "")
    diagnosis = data.get("diagnosis") or {}
    remediation = str(diagnosis.get("remediation") or data.get("remediation") or "")
    url = str(data.get("url") or "")
    status, previous = status_words(data.get("status")), status_words(data.get("previous_status"))
    if event.type == TENANT_ONBOARDED:
        return Text(
            f"{name} onboarded: {status}",
            f"The first verification after consent finished: {diagnosis.get('title', status)}.",
            remediation,
            url,
        )
    if event.type == TENANT_STATUS_CHANGED:
        flapping = data.get("flapping")
        summary = f"{diagnosis.get('title', status)}."
        if isinstance(flapping, dict):
            summary = (
                f"The status changed {flapping.get('changes')} more times within "
                f"{int(flapping.get('window_seconds', 0)) // 60} minutes (flapping); "
                f"it is now {status}: {diagnosis.get('title', status)}."
            )
        return Text(f"{name}: {previous} → {status}", summary, remediation, url)
    if event.type == TENANT_STALE:
        return Text(
            f"{name}: status stale ({status})",
            f"Verifications have failed transiently since {data.get('stale_since')}; "
            f"the status shown, {status}, is the last one proven.",
            remediation,
            url,
        )
    if event.type == ALERT_OPENED:
        return Text(f"Platform alert: {data.get('title')}", "", remediation, url)
    if event.type == ALERT_RESOLVED:
        return Text(
            f"Platform alert resolved: {data.get('title')}",
            "A token exchange succeeded again; verifications run as usual.",
            "",
            url,
        )
    if event.type == INVITATION_EXPIRED_UNUSED:
        return Text(
            f"Invitation for {name} expired unused",
            f"Nobody granted consent through it before {data.get('expired_at')}.",
            "Ask the customer whether they still want to onboard, and create a new "
            "invitation for them if so.",
            url,
        )
    if event.type == BREAK_GLASS_USED:
        return Text(
            f"Break-glass sign-in: {data.get('user')}",
            f"The local account {data.get('user')} signed in with its password and "
            f"{data.get('second_factor_words')} from {data.get('ip')}, bypassing Entra ID.",
            "If nobody planned this, disable the account in the Django admin, change its "
            "password and enrol a new second factor (manage.py break_glass enrol), then read "
            "the audit log for what it did.",
            url,
        )
    if event.type == DIGEST:
        return digest_text(data)
    if event.type == TEST:
        return Text(
            f"Test notification from {settings.MSSP_NAME}",
            "This destination receives the portal's notifications. Nothing else is needed.",
            "",
            url,
        )
    return Text(event.type, "", remediation, url)


def digest_text(data: dict[str, object]) -> Text:
    counts = data.get("counts") or {}
    total = sum(int(n) for n in counts.values())
    parts = [f"{n} {status_words(status)}" for status, n in counts.items() if n]
    tenants = ngettext("%d tenant", "%d tenants", total) % total
    headline = f"Daily digest: {tenants}" + (f" ({', '.join(parts)})" if parts else "")
    lines = []
    changed = data.get("changed") or []
    if changed:
        lines.append(f"Changed in the last day ({len(changed)}):")
        lines += [
            f"- {c.get('customer_name') or c.get('tenant_id')}: "
            f"{status_words(c.get('previous_status'))} → {status_words(c.get('status'))}"
            for c in changed
        ]
    else:
        lines.append("No tenant's status changed in the last day.")
    if data.get("stale"):
        stale = int(data["stale"])
        lines.append(
            ngettext(
                "%d tenant is stale: its last checks were inconclusive.",
                "%d tenants are stale: their last checks were inconclusive.",
                stale,
            )
            % stale
        )
    expiring = data.get("expiring_invitations") or []
    if expiring:
        lines.append(f"Invitations expiring within 3 days ({len(expiring)}), unused so far:")
        lines += [f"- {i.get('customer_name')}: expires {i.get('expires_at')}" for i in expiring]
    return Text(headline, "\n".join(lines), "", str(data.get("url") or ""))


def webhook_body(event: Event) -> bytes:
    return json.dumps(event.payload(), separators=(",", ":"), sort_keys=True).encode()


def teams_body(event: Event) -> bytes:
    """A Teams workflow ("When a Teams webhook request is received") message with one
    Adaptive Card. Adaptive Card TextBlocks render a Markdown subset, so texts go in as
    plain runs escaped for it."""
    words = text(event)
    body: list[dict[str, object]] = [
        {"type": "TextBlock", "text": _md(words.headline), "weight": "Bolder", "wrap": True}
    ]
    if words.summary:
        body.append({"type": "TextBlock", "text": _md(words.summary), "wrap": True})
    for line in words.remediation.splitlines():
        if line.strip():
            body.append({"type": "TextBlock", "text": _md(line), "wrap": True, "spacing": "Small"})
    card: dict[str, object] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if words.url:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open in the portal", "url": words.url}
        ]
    message = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    return json.dumps(message).encode()


def slack_body(event: Event) -> bytes:
    words = text(event)
    lines = [f"*{_slack(words.headline)}*"]
    if words.summary:
        lines.append(_slack(words.summary))
    lines += [_slack(line) for line in words.remediation.splitlines() if line.strip()]
    if words.url:
        lines.append(f"<{words.url}|Open in the portal>")
    return json.dumps(
        {
            "text": _slack(words.headline),
            "mrkdwn": True,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
        }
    ).encode()


def email_parts(event: Event) -> tuple[str, str, str]:
    """(subject, plain text, HTML) from templates/notifications/."""
    words = text(event)
    context = {"event": event, "text": words, "mssp_name": settings.MSSP_NAME}
    subject = " ".join(words.headline.split())[:200]
    return (
        subject,
        render_to_string("notifications/email.txt", context),
        render_to_string("notifications/email.html", context),
    )


def _md(value: str) -> str:
    # Markdown that Teams would act on: emphasis, links, lists, headings.
    for char in "\\*_[]()#`>~":
        value = value.replace(char, "\\" + char)
    return value


def _slack(value: str) -> str:
    # Slack's three control characters in mrkdwn.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
