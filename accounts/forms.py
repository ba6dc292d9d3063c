from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone

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
