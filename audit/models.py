from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One security-relevant action: who, on which tenant, what, with what outcome, when."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=254, help_text="staff UPN, 'customer' or 'system'")
    action = models.CharField(max_length=64)
    # The Entra tenant id, not a foreign key: the trail outlives offboarding and also names
    # tenants that were never recorded (a forged consent callback, say).
    tenant_id = models.UUIDField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            # The audit log page filters by tenant and pages newest first.
            models.Index(fields=["tenant_id", "-at"], name="audit_tenant_at_idx"),
            # ... and by action.
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.outcome}"
