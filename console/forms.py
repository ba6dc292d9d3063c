from __future__ import annotations

import uuid

from django import forms
from django.db.models import F

from audit.models import AuditEvent
from consent.models import Invitation
from notifications.models import EVENT_TYPES, Delivery, Destination, shown_target
from tenants import profiles
from tenants.models import Tenant, TenantGroup

# ?sort= value -> ORDER BY. The stable tie-breaker keeps pages from overlapping.
SORTS = {
    "name": ("display_name", "tenant_id"),
    "-name": ("-display_name", "-tenant_id"),
    "domain": ("primary_domain", "tenant_id"),
    "-domain": ("-primary_domain", "-tenant_id"),
    "status": ("status", "display_name", "tenant_id"),
    "-status": ("-status", "display_name", "tenant_id"),
    "since": ("status_since", "tenant_id"),
    "-since": ("-status_since", "tenant_id"),
    # Never checked sorts as the oldest check: SQLite and PostgreSQL disagree on where NULLs
    # go unless told.
    "checked": (F("last_checked_at").asc(nulls_first=True), "tenant_id"),
    "-checked": (F("last_checked_at").desc(nulls_last=True), "-tenant_id"),
}
STALE = "stale"
EVERYTHING = "all"  # offboarded tenants too; the default ("") leaves them out
ATTENTION = "attention"


class DashboardFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "All active"),
            (ATTENTION, "Needs attention"),
            *Tenant.Status.choices,
            (STALE, "Stale"),
            (EVERYTHING, "All, with offboarded"),
        ],
    )
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in SORTS])
    group = forms.ChoiceField(required=False, choices=[("", "All groups")], label="Group")

    def __init__(self, *args: object, groups: list | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Only the groups offered are valid: a hand-edited ?group= of another is dropped.
        self.fields["group"].choices = [("", "All groups")] + [
            (str(g.code), g.name) for g in (groups or [])
        ]

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data["q"].split())


class UUIDListField(forms.Field):
    widget = forms.MultipleHiddenInput

    def to_python(self, value: object) -> list[uuid.UUID]:
        if not value:
            return []
        try:
            return [uuid.UUID(str(item)) for item in value]  # type: ignore[union-attr]
        except ValueError as exc:
            raise forms.ValidationError("Invalid selection.", code="invalid") from exc


class TenantSelectionForm(forms.Form):
    """Tenants ticked on the dashboard (their public codes)."""

    MAX = 500

    tenant = UUIDListField(error_messages={"required": "Select at least one tenant."})

    def clean_tenant(self) -> list[uuid.UUID]:
        codes = self.cleaned_data["tenant"]
        if len(codes) > self.MAX:
            raise forms.ValidationError(f"Select at most {self.MAX} tenants at a time.")
        return codes


class InvitationSelectionForm(forms.Form):
    invitation = UUIDListField(required=False)


class ConfirmForm(forms.Form):
    """The confirmation box of a destructive action."""

    confirm = forms.BooleanField(
        required=True, label="I understand what this does", error_messages={"required": ""}
    )


class InvitationFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "All"),
            ("usable", "Usable"),
            ("expired", "Expired"),
            *Invitation.Status.choices,
        ],
    )


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=64)
    outcome = forms.ChoiceField(required=False, choices=[("", "Any"), *AuditEvent.Outcome.choices])
    actor = forms.CharField(required=False, max_length=254)
    tenant = forms.UUIDField(required=False, label="Tenant ID")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class InvitationImportForm(forms.Form):
    """The CSV file of many customers to invite."""

    file = forms.FileField(
        label="CSV file",
        help_text=(
            "A header line, then one customer per line: customer_name,tenant (required), "
            "profile, contact_email, contact_name, days. UTF-8, comma or semicolon separated."
        ),
    )


class DestinationForm(forms.ModelForm):
    """A notification destination. The model checks the target (https, a public address)
    and the secret; the form offers the event types and access profiles to choose from."""

    event_types = forms.MultipleChoiceField(
        required=False,
        choices=list(EVENT_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        help_text="Leave all unticked to receive every event.",
    )
    access_profiles = forms.MultipleChoiceField(
        required=False,
        choices=profiles.CHOICES,
        widget=forms.CheckboxSelectMultiple,
        label="Only tenants with these access profiles",
        help_text="Leave all unticked for every tenant. Platform alerts reach every destination.",
    )

    class Meta:
        model = Destination
        fields = [
            "kind",
            "name",
            "target",
            "secret",
            "event_types",
            "access_profiles",
            "daily_digest",
        ]
        labels = {
            "target": "URL or email address",
            "secret": "Signing secret (webhooks)",
            "daily_digest": "Also send a daily digest (email)",
        }
        help_texts = {
            "target": (
                "An https:// URL for a webhook, a Teams workflow or a Slack incoming webhook; "
                "an email address for email."
            ),
            "secret": (
                "whsec_… from the receiver, or leave it empty: one is generated and shown once."
            ),
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        if self.instance.pk:
            # The kind and the secret stay what they are; a new secret means a new destination.
            del self.fields["kind"]
            del self.fields["secret"]

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if not data.get("name"):
            kind = data.get("kind") or self.instance.kind
            data["name"] = shown_target(kind, data.get("target") or "")
            self.instance.name = data["name"]
        return data


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All"), *Delivery.Status.choices])
    type = forms.ChoiceField(
        required=False, choices=[("", "All"), *((t, t) for t in EVENT_TYPES)], label="Event"
    )


class TenantGroupsForm(forms.Form):
    """The groups one tenant is in (tenant page)."""

    groups = forms.ModelMultipleChoiceField(
        queryset=TenantGroup.objects.order_by("name"),
        to_field_name="code",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Groups",
    )

    def __init__(self, *args: object, tenant: Tenant, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["groups"] = list(tenant.tenant_groups.all())


class GroupAssignForm(forms.Form):
    """The group the dashboard's selection goes into."""

    assign_group = forms.ModelChoiceField(
        queryset=TenantGroup.objects.order_by("name"),
        to_field_name="code",
        empty_label="Choose a group…",
        label="Add to group",
    )


class TenantGroupForm(forms.Form):
    """Create or edit a tenant group; the mappings are one value per line."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    scope = forms.ChoiceField(choices=TenantGroup.Scope.choices, initial=TenantGroup.Scope.ONLY)
    entra_group_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Entra security groups (object ids, one a line)",
    )
    app_roles = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="App role values (one a line)",
    )

    def __init__(self, *args: object, group: TenantGroup | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.group = group

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        taken = TenantGroup.objects.filter(name=name)
        if self.group is not None:
            taken = taken.exclude(pk=self.group.pk)
        if taken.exists():
            raise forms.ValidationError("A group with this name exists. Choose another name.")
        return name

    def clean_entra_group_ids(self) -> list[str]:
        ids = []
        for line in self.cleaned_data["entra_group_ids"].split():
            try:
                ids.append(str(uuid.UUID(line)))
            except ValueError:
                raise forms.ValidationError(
                    f"“{line[:40]}” is not an object id. Copy the group's Object ID from "
                    "Entra (Groups → the group → Overview)."
                ) from None
        return list(dict.fromkeys(ids))

    def clean_app_roles(self) -> list[str]:
        return list(dict.fromkeys(self.cleaned_data["app_roles"].split()))
