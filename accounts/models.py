"""Staff accounts: the Entra identity behind a user, API tokens, failed local sign-ins."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class StaffIdentity(models.Model):
    """The Entra account (home tenant) a staff user signs in with.

    Users are found by the immutable object id, never by the UPN, which an Entra admin can
    rename or reassign. The portal permissions live here: `accounts.operate` (read the
    console) and `accounts.administer` (act on tenants, invitations, tokens, audit log).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_identity"
    )
    tenant_id = models.UUIDField()
    object_id = models.UUIDField(unique=True)
    # The app roles of the last sign-in or re-check, as Entra sent them (the portal's
    # decide the Django groups; any may map to tenant groups).
    roles = models.JSONField(default=list, blank=True)
    # Object ids of the home tenant's security groups the user is in (the id token's
    # `groups` claim, or Graph when Entra sent the overage form), re-read at every sign-in
    # and every STAFF_ROLE_RECHECK seconds: what tenant groups scope the user by.
    groups = models.JSONField(default=list, blank=True)
    # When roles and groups were last read from Entra (sign-in or re-check); every request
    # of the user (and of their API tokens) past STAFF_ROLE_RECHECK reads them again.
    roles_checked_at = models.DateTimeField(null=True, blank=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "staff identities"
        default_permissions = ()
        permissions = [
            ("operate", "Can use the staff console (dashboard, tenant pages)"),
            ("administer", "Can act: invitations, re-verify, offboard, audit log, API tokens"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.object_id})"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A bearer token for machines (monitoring). Only its SHA-256 is stored: the value is
    shown once, when an admin creates it. 256 random bits need no slow hash."""

    class Scope(models.TextChoices):
        STATUS_READ = "status:read", "Read tenant statuses (JSON status endpoint)"

    PREFIX = "mssp_"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=32, choices=Scope.choices, default=Scope.STATUS_READ)
    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the value, so an admin can tell tokens apart.
    hint = models.CharField(max_length=16)
    created_by = models.CharField(max_length=254)
    # The token reads what its creator may read (their tenant scope, while they keep a
    # portal role). Empty for tokens from before scoping, all created by admins.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_tokens",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def hash(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8")).hexdigest()

    @classmethod
    def issue(
        cls,
        *,
        name: str,
        scope: str,
        created_by: str,
        expires_at: datetime | None = None,
        owner: object | None = None,
    ) -> tuple[ApiToken, str]:
        """A new token and its value; the value is not kept anywhere."""
        value = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            name=name,
            scope=scope,
            token_hash=cls.hash(value),
            hint=value[: len(cls.PREFIX) + 4],
            created_by=created_by,
            expires_at=expires_at,
            owner=owner,
        )
        return token, value

    @classmethod
    def authenticate(cls, value: str, scope: str) -> ApiToken | None:
        """The active token with this value and scope, its use recorded; else None."""
        if not value.startswith(cls.PREFIX) or len(value) > 100:
            return None
        token = cls.objects.active().filter(token_hash=cls.hash(value), scope=scope).first()
        if token is not None:
            token.last_used_at = timezone.now()
            token.save(update_fields=["last_used_at"])
        return token

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class LoginFailureQuerySet(models.QuerySet["LoginFailure"]):
    def recent(self, seconds: int) -> LoginFailureQuerySet:
        return self.filter(at__gt=timezone.now() - timedelta(seconds=seconds))


class LoginFailure(models.Model):
    """One failed password sign-in (break-glass accounts); the throttle counts these."""

    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    objects = LoginFailureQuerySet.as_manager()

    class Meta:
        indexes = [
            # accounts.throttle: failures for a username, and from an address, in the window.
            models.Index(fields=["username", "at"], name="login_failure_user_idx"),
            models.Index(fields=["ip", "at"], name="login_failure_ip_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.ip}"
