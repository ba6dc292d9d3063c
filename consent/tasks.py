"""Background work of the consent app, so that no web request holds 2,000 rows: previewing
and confirming a CSV import, populating a re-consent campaign, emailing many invitations."""

from __future__ import annotations

import logging
import time

from django_tasks import task

from consent import imports
from consent.imports import ImportFileError
from consent.models import Campaign, Invitation, InvitationImport, InvitationNotSent

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


class _Progress:
    """Writes a job's progress at most every half second (a 2,000-row file is not 2,000
    UPDATEs)."""

    def __init__(self, job_pk: int) -> None:
        self.job_pk, self.last = job_pk, 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and done != total:
            return
        self.last = now
        fields: dict[str, int] = {"done": done}
        if total is not None:
            fields["total"] = total
        InvitationImport.objects.filter(pk=self.job_pk).update(**fields)


def run_import_preview(code: str) -> None:
    job = InvitationImport.objects.filter(
        code=code, state=InvitationImport.State.PREVIEWING
    ).first()
    if job is None:
        return
    try:
        result = imports.preview(
            bytes(job.content), filename=job.filename, progress=_Progress(job.pk)
        )
    except ImportFileError as exc:
        job.state, job.error = InvitationImport.State.FAILED, str(exc)[:300]
        job.save(update_fields=["state", "error"])
        return
    except Exception:
        logger.exception("import %s: preview failed", code)
        job.state, job.error = (
            InvitationImport.State.FAILED,
            "internal error: upload the file again",
        )
        job.save(update_fields=["state", "error"])
        return
    job.preview, job.state = result.to_dict(), InvitationImport.State.PREVIEWED
    job.save(update_fields=["preview", "state"])


def run_import_confirm(code: str, actor: str) -> None:
    """Create the "will create" rows; claimed with a conditional UPDATE, so a task run twice
    creates them once."""
    job = InvitationImport.objects.filter(code=code).first()
    if job is None or job.state != InvitationImport.State.CONFIRMING or job.created is not None:
        return
    result = imports.Preview.from_dict(job.preview)
    progress = _Progress(job.pk)
    created = imports.confirm(result, actor=actor, progress=lambda n: progress(n))
    InvitationImport.objects.filter(pk=job.pk).update(
        state=InvitationImport.State.CONFIRMED,
        created=[str(i.code) for i in created],
        preview=result.to_dict(),
        done=len(created),
        content=b"",  # the file is not kept once its invitations exist
    )


@task()
def preview_invitation_import(code: str) -> None:
    run_import_preview(code)


@task()
def confirm_invitation_import(code: str, actor: str) -> None:
    run_import_confirm(code, actor)


def run_campaign(code: str) -> None:
    """Populate a campaign opened in the console; then, if asked, email each pending
    customer their link."""
    campaign = Campaign.objects.filter(code=code).first()
    if campaign is None:
        return
    campaign.populate()
    if campaign.email_contacts:
        codes = [
            str(m.invitation.code)
            for m in campaign.members.select_related("invitation")
            if m.invitation is not None and m.invitation.emailed_at is None
        ]
        email_invitations(codes, actor=campaign.created_by)


@task()
def populate_campaign(code: str) -> None:
    run_campaign(code)
