from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device

from accounts import second_factor
from accounts.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses it, e.g. “Nagios on mon-01”.", strip=True
    )
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.STATUS_READ)
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=730,
        initial=365,
        label="Expires in (days)",
    )

    def expires_at(self) -> timezone.datetime:
        return timezone.now() + timedelta(days=self.cleaned_data["expires_in_days"])


class OneTimeCodeInput(forms.TextInput):
    """A text box that is empty again when the form comes back with an error: a code is
    not echoed into the page (nor needed again: it is single use, or expired)."""

    def format_value(self, value: Any) -> str | None:
        return None


class BreakGlassForm(AuthenticationForm):
    """Username, password and the second factor (accounts.second_factor). Every refusal
    says the same thing, so the form tells nobody whether the password was right."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "The username, password or one-time code is not right, or this account has no "
            "second factor enrolled. Check them and try again; an administrator enrols a "
            "second factor with “manage.py break_glass enrol USERNAME”."
        ),
    }

    otp_token = forms.CharField(
        label="One-time code",
        max_length=32,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=OneTimeCodeInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.otp_device: Device | None = None
        # Why a right password was refused, for the audit record only.
        self.second_factor_refusal = ""

    @sensitive_variables("code")
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()  # the password, through the throttled backend
        user = self.get_user()
        if user is None:  # a field left empty: its own error says so
            return cleaned
        code = cleaned.get("otp_token") or ""
        if not second_factor.is_enrolled(user):
            self.second_factor_refusal = "no_second_factor"
        else:
            self.otp_device = second_factor.verify(user, code)
            if self.otp_device is None:
                self.second_factor_refusal = "bad_second_factor"
        if self.second_factor_refusal:
            raise self.get_invalid_login_error()
        return cleaned
