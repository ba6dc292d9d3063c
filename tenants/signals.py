"""What the tenants domain announces to the apps above it (which it cannot import)."""

from django.dispatch import Signal

# Sent inside the offboarding transaction, with `tenant` and `actor`. The consent app revokes
# the tenant's open invitations on it.
tenant_offboarded = Signal()

# Sent at the end of every scheduler tick. The consent app announces the invitations that
# expired unused on it.
scheduler_ticked = Signal()
