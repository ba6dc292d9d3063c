"""Writing the audit trail. Every value passes through `untrusted.for_log` first."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from django.http import HttpRequest

from audit.models import AuditEvent
from mssp_portal import statements
from mssp_portal.untrusted import for_log

logger = logging.getLogger("mssp_portal.audit")


def actor_of(request: HttpRequest | None) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return for_log(user.get_username(), 254)
    return "anonymous"


def record(
    action: str,
    outcome: str,
    *,
    actor: str,
    tenant_id: uuid.UUID | str | None = None,
    detail: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Store one audit event and log it as one line."""
    clean = {str(key): for_log(value) for key, value in (detail or {}).items()}
    # Written on every status change of a fleet's verification: a prepared INSERT.
    event = statements.insert(
        AuditEvent(
            actor=actor, action=action, tenant_id=tenant_id or None, outcome=outcome, detail=clean
        )
    )
    logger.info(
        "audit action=%s outcome=%s actor=%s tenant=%s correlation=%s detail=%s",
        action,
        outcome,
        actor,
        tenant_id or "-",
        event.correlation_id,
        clean,
    )
    return event
