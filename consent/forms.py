from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any, NamedTuple

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from consent.directory import DOMAIN_PATTERN, TenantLookupError, tenant_id_for_domain
from consent.models import STATE_PATTERN, Invitation
from tenants import profiles
from tenants.models import TenantGroup

# The canonical 8-4-4-4-12 form. uuid.UUID() alone would also take braces, "urn:uuid:" and
# 32 bare hex digits; Entra sends none of those.
GUID_PATTERN = re.compile(
    r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)


def _text(max_length: int | None = None, **kwargs: Any) -> forms.CharField:
    # strip=False: a value with surrounding blanks is not what Entra sends; it stays invalid
    # instead of being quietly repaired.
    return forms.CharField(required=False, strip=False, max_length=max_length, **kwargs)


class ConsentCallbackForm(forms.Form):
    """The query string Entra's admin-consent endpoint redirects back with.

    Success: `admin_consent=True&tenant=<GUID>&scope=…&state=…`. Failure:
    `error=…&error_description=…&state=…` (usually with `admin_consent=True` too). Any other
    parameter, or any parameter given twice, makes the whole callback invalid: a QueryDict
    would silently keep the last of two values.
    """

    state = forms.CharField(strip=False, max_length=43, validators=[RegexValidator(STATE_PATTERN)])
    tenant = _text(36, validators=[RegexValidator(GUID_PATTERN)])
    admin_consent = _text(8)
    scope = _text(2048)
    error = _text(64)
    # Attacker-shaped text: never rendered; logged through for_log only. Read for a hint by
    # consent/refusals.py alone (its leading AADSTS code, known resource application ids).
    error_description = _text()
    error_subcode = _text(64)
    error_uri = _text(2048)
    trace_id = _text(64)
    correlation_id = _text(64)
    timestamp = _text(64)

    def clean_tenant(self) -> uuid.UUID | None:
        value = self.cleaned_data["tenant"]
        return uuid.UUID(value) if value else None

    def clean(self) -> dict[str, Any]:
        for key, values in self.data.lists():
            if key not in self.fields:
                raise ValidationError("unknown parameter", code="unknown")
            if len(values) > 1:
                raise ValidationError("duplicated parameter", code="duplicated")
        data = super().clean()
        if self.errors or data.get("error"):
            return data
        if data.get("tenant") is None:
            raise ValidationError("no tenant", code="no_tenant")
        if (data.get("admin_consent") or "").lower() != "true":
            raise ValidationError("admin_consent is not True", code="no_consent")
        return data

    def problems(self) -> str:
        """What was wrong, for the log: error codes and known field names only; the names of
        unknown parameters are the sender's text and are left out."""
        found = []
        for field, errors in self.errors.as_data().items():
            for error in errors:
                found.append(f"{field}:{error.code or 'invalid'}")
        return " ".join(sorted(found))


class ExpectedTenant(NamedTuple):
    tenant_id: uuid.UUID
    domain: str  # the domain the admin gave, when the tenant id was looked up from it


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in value)


class InvitationForm(forms.Form):
    """A new consent invitation: who it is for, which tenant may accept it, what access."""

    customer_name = forms.CharField(max_length=200)
    # A tenant id, or a domain the customer has verified in Entra (looked up now, so the
    # invitation is always bound to a GUID). Required: see InvitationQuerySet.refusal.
    tenant = forms.CharField(
        max_length=253,
        error_messages={
            "required": "Give the customer's tenant ID or a domain they verified: an "
            "invitation is accepted only from the tenant it names."
        },
    )
    access_profile = forms.ChoiceField(choices=profiles.CHOICES, initial=profiles.DEFAULT_PROFILE)
    days = forms.IntegerField(min_value=1, max_value=365)
    # Whom to send the link to: optional, the customer's administrator.
    contact_name = forms.CharField(max_length=200, required=False)
    contact_email = forms.EmailField(max_length=254, required=False)
    # The tenant groups the tenant lands in once it consents.
    tenant_groups = forms.ModelMultipleChoiceField(
        queryset=TenantGroup.objects.order_by("name"),
        to_field_name="code",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Tenant groups",
    )

    def __init__(self, *args: Any, check_rules: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.INVITATION_DEFAULT_DAYS
        # The CSV import gives its own verdicts (already onboarded, invited) for the same
        # rules, so it checks only the fields here.
        self.check_rules = check_rules

    def clean_customer_name(self) -> str:
        name = " ".join(self.cleaned_data["customer_name"].split())
        if not name or _has_control_characters(name):
            raise ValidationError(
                "Enter the customer's name (letters, digits and punctuation only).",
                code="invalid",
            )
        return name

    def clean_contact_name(self) -> str:
        name = " ".join(self.cleaned_data["contact_name"].split())
        if _has_control_characters(name):
            raise ValidationError(
                "Enter the contact's name (letters, digits and punctuation only).",
                code="invalid",
            )
        return name

    def clean_contact_email(self) -> str:
        # Domains are case-insensitive; the local part is kept as given.
        email = self.cleaned_data["contact_email"]
        local, _, domain = email.rpartition("@")
        return f"{local}@{domain.lower()}" if email else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("contact_name") and not data.get("contact_email") and not self.errors:
            raise ValidationError(
                "Give the contact's email address too, or leave the name empty.",
                code="contact_without_email",
            )
        return data

    def clean_tenant(self) -> ExpectedTenant:
        value = self.cleaned_data["tenant"].strip()
        if GUID_PATTERN.match(value):
            return self._allowed(ExpectedTenant(uuid.UUID(value), ""))
        if not DOMAIN_PATTERN.match(value.lower()):
            raise ValidationError(
                "Give the customer's tenant ID (a GUID such as "
                "00000000-0000-0000-0000-000000000000) or a domain they have verified in Entra.",
                code="invalid",
            )
        try:
            found = ExpectedTenant(tenant_id_for_domain(value), value.lower())
        except TenantLookupError as exc:
            raise ValidationError(str(exc), code="lookup") from exc
        return self._allowed(found)

    def _allowed(self, expected: ExpectedTenant) -> ExpectedTenant:
        refused = self.check_rules and Invitation.objects.refusal(expected.tenant_id)
        if refused:
            raise ValidationError(refused, code="refused")
        return expected
