"""Many invitations at once from a CSV file (admins only): upload → preview → confirm.

The file is checked as a whole in the request (a header it cannot read is refused at once);
the domain lookups of the preview and the creation of the invitations run as tasks
(`consent.tasks`), and the page follows their progress. The import is kept in the database
(`InvitationImport`) and only the admin who uploaded it may open or confirm it; confirming
works from its stored preview, never from the posted form, and re-checks every row against
the database first.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from accounts import roles
from audit.log import actor_of
from consent import imports
from consent.imports import ImportFileError, Verdict
from consent.models import InvitationImport
from consent.tasks import confirm_invitation_import, preview_invitation_import
from console.forms import ConfirmForm, InvitationImportForm


def _job(request: HttpRequest, import_id: uuid.UUID) -> InvitationImport:
    return get_object_or_404(InvitationImport, code=import_id, created_by=actor_of(request))


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_import(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST: check the file and start its preview (nothing created)."""
    form = InvitationImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if upload.size > imports.MAX_BYTES:
                raise ImportFileError(
                    f"The file is larger than {imports.MAX_BYTES // (1024 * 1024)} MB."
                )
            content = upload.read()
            imports.read_table(content)  # a file unreadable as a whole is refused now
        except ImportFileError as exc:
            form.add_error("file", str(exc))
        else:
            with transaction.atomic():
                job = InvitationImport.objects.create(
                    filename=upload.name[:200], content=content, created_by=actor_of(request)
                )
                code = str(job.code)
                transaction.on_commit(lambda: preview_invitation_import.enqueue(code))
            return redirect("console:invitation_import_preview", import_id=job.code)
    return render(
        request,
        "console/invitation_import.html",
        {"form": form},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_import_preview(request: HttpRequest, import_id: uuid.UUID) -> HttpResponse:
    """GET: the progress, then every row's verdict. POST (confirmed): create the "will
    create" rows, by a task."""
    job = _job(request, import_id)
    form = ConfirmForm(request.POST or None)
    if request.method == "POST":
        if job.state != InvitationImport.State.PREVIEWED:
            messages.info(
                request,
                "This import was already confirmed; nothing more created."
                if job.state
                in (InvitationImport.State.CONFIRMING, InvitationImport.State.CONFIRMED)
                else "The preview is not ready yet: wait for it, then confirm.",
            )
            return redirect("console:invitation_import_preview", import_id=job.code)
        if form.is_valid():
            preview = imports.Preview.from_dict(job.preview)
            with transaction.atomic():
                claimed = InvitationImport.objects.filter(
                    pk=job.pk, state=InvitationImport.State.PREVIEWED
                ).update(
                    state=InvitationImport.State.CONFIRMING,
                    done=0,
                    total=preview.count(Verdict.WILL_CREATE),
                )
                if claimed:
                    code, actor = str(job.code), actor_of(request)
                    transaction.on_commit(lambda: confirm_invitation_import.enqueue(code, actor))
            return redirect("console:invitation_import_preview", import_id=job.code)
    context: dict[str, object] = {"job": job, "form": form, "created": job.created}
    if job.preview is not None:
        preview = imports.Preview.from_dict(job.preview)
        context["preview"] = preview
        context["counts"] = {
            "create": preview.count(Verdict.WILL_CREATE),
            "onboarded": preview.count(Verdict.ALREADY_ONBOARDED),
            "duplicate": preview.count(Verdict.DUPLICATE),
            "invalid": preview.count(Verdict.INVALID),
        }
    if job.created is not None:
        context["created_text"] = ngettext(
            "%(n)d invitation created.", "%(n)d invitations created.", len(job.created)
        ) % {"n": len(job.created)}
    return render(
        request,
        "console/invitation_import_preview.html",
        context,
        status=400 if request.method == "POST" else 200,
    )
