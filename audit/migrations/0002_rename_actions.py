"""One naming scheme for audit actions, `<object>.<verb past tense>`: rename the old rows."""

from django.db import migrations

# old action -> new action. A sign-in's old name was the same for success and refusal; the
# outcome tells them apart (see RENAMED_BY_OUTCOME).
RENAMED = {
    "invitation_create": "invitation.created",
    "consent.invitation_created": "invitation.created",
    "invitation_revoke": "invitation.revoked",
    "consent.invitation_revoked": "invitation.revoked",
    "consent.tenant_mismatch": "consent.rejected",
    "platform.alerts_resolved": "platform.alert_resolved",
    "reverify": "verification.requested",
    "reverify_all": "fleet.verification_requested",
    "offboard": "tenant.offboarded",
    "export_csv": "tenants.exported",
    "session_timeout": "session.expired",
    "admin_site": "admin_site.refused",
    "logout": "user.signed_out",
    "login_local": "user.sign_in_refused",
    "api_token_create": "api_token.created",
    "api_token_revoke": "api_token.revoked",
}
RENAMED_BY_OUTCOME = {("login", "success"): "user.signed_in", ("login", "denied"): "user.sign_in_refused"}


def forwards(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    for old, new in RENAMED.items():
        AuditEvent.objects.filter(action=old).update(action=new)
    for (old, outcome), new in RENAMED_BY_OUTCOME.items():
        AuditEvent.objects.filter(action=old, outcome=outcome).update(action=new)


def backwards(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    # Approximate: where two old names became one, going back picks the first of them.
    reverse = {}
    for old, new in RENAMED.items():
        reverse.setdefault(new, old)
    for new, old in reverse.items():
        AuditEvent.objects.filter(action=new).update(action=old)
    for (old, outcome), new in RENAMED_BY_OUTCOME.items():
        AuditEvent.objects.filter(action=new, outcome=outcome).update(action=old)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
