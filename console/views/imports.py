"""Many invitations at once from a CSV file (admins only): upload → preview → confirm.

The preview is kept in the staff member's session (server-side: the sessions table), keyed
by a random id. Confirming reads it from there, never from the posted form, and re-checks
every row against the database before creating anything.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import roles
from audit.log import actor_of
from consent import imports
from consent.imports import ImportFileError, Verdict
from console.forms import ConfirmForm, InvitationImportForm

SESSION_KEY = "invitation_imports"
# Previews kept per session: an admin may have a couple of tabs open, not a history.
KEEP = 3


def _stored(request: HttpRequest) -> dict[str, dict[str, object]]:
    return request.session.get(SESSION_KEY, {})


def _store(request: HttpRequest, import_id: str, entry: dict[str, object]) -> None:
    stored = {k: v for k, v in _stored(request).items() if k != import_id}
    stored[import_id] = entry
    request.session[SESSION_KEY] = dict(list(stored.items())[-KEEP:])


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.ADMINISTER, raise_exception=True)
def invitation_import(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST: preview the file (nothing created) and show it."""
    form = InvitationImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if upload.size > imports.MAX_BYTES:
                raise ImportFileError(
                    f"The file is larger than {imports.MAX_BYTES // (1024 * 1024)} MB."
                )
            preview = imports.preview(upload.read(), filename=upload.name[:200])
        except ImportFileError as exc:
            form.add_error("file", str(exc))
        else:
            import_id = str(uuid.uuid4())
            _store(request, import_id, {"preview": preview.to_dict(), "created": None})
            return redirect("console:invitation_import_preview", import_id=import_id)
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
    """GET: every row's verdict. POST (confirmed): create the "will create" rows."""
    entry = _stored(request).get(str(import_id))
    if entry is None:
        raise Http404("No such import in this session.")
    preview = imports.Preview.from_dict(entry["preview"])  # type: ignore[arg-type]
    form = ConfirmForm(request.POST or None)
    if request.method == "POST":
        if entry["created"] is not None:
            messages.info(request, "This import was already confirmed; nothing more created.")
            return redirect("console:invitation_import_preview", import_id=import_id)
        if form.is_valid():
            created = imports.confirm(preview, actor=actor_of(request))
            _store(
                request,
                str(import_id),
                {"preview": preview.to_dict(), "created": [str(i.code) for i in created]},
            )
            messages.success(request, f"{len(created)} invitation(s) created.")
            return redirect("console:invitation_import_preview", import_id=import_id)
    return render(
        request,
        "console/invitation_import_preview.html",
        {
            "preview": preview,
            "counts": {
                "create": preview.count(Verdict.WILL_CREATE),
                "onboarded": preview.count(Verdict.ALREADY_ONBOARDED),
                "duplicate": preview.count(Verdict.DUPLICATE),
                "invalid": preview.count(Verdict.INVALID),
            },
            "created": entry["created"],
            "form": form,
        },
        status=400 if request.method == "POST" else 200,
    )
