"""Background work of the consent app: emailing many invitations (an import, a selection, a
campaign) without holding a web request open."""

from __future__ import annotations

import logging

from django_tasks import task

from consent.models import Invitation, InvitationNotSent

logger = logging.getLogger("mssp_portal.consent")


def email_invitations(codes: list[str], *, actor: str) -> tuple[int, int]:
    """Email each of these invitations to its contact; returns (sent, not sent). Those not
    sent are audited with the reason (see Invitation.send_email)."""
    sent = failed = 0
    for invitation in Invitation.objects.filter(code__in=codes):
        try:
            invitation.send_email(actor=actor)
            sent += 1
        except InvitationNotSent as exc:
            failed += 1
            logger.info("invitation %s not emailed: %s", invitation.code, exc)
    return sent, failed


@task()
def send_invitation_emails(codes: list[str], actor: str) -> None:
    email_invitations(codes, actor=actor)
