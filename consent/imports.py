"""Bulk invitations from a CSV file: parse, preview every row's verdict, confirm.

A preview changes nothing. Confirming creates the rows whose verdict is still "will create"
in one transaction, each through `create_invitation` (one `invitation.created` each) plus one
`invitations.imported` event. A tenant that is onboarded, or has an open invitation, is
"already onboarded": importing the same file twice creates nothing the second time.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import tablib
from django.conf import settings
from django.db import models, transaction

from audit.log import record
from audit.models import AuditEvent
from consent.directory import DOMAIN_PATTERN, TenantLookupError, tenant_id_for_domain
from consent.forms import GUID_PATTERN, InvitationForm
from consent.models import Invitation
from tenants import profiles
from tenants.models import Tenant

REQUIRED_COLUMNS = ("customer_name", "tenant")
OPTIONAL_COLUMNS = ("profile", "contact_email", "contact_name", "days")
# Enough for any real fleet file; a bigger upload is refused before it is parsed.
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000


class Verdict(models.TextChoices):
    WILL_CREATE = "will-create", "Will create"
    ALREADY_ONBOARDED = "already-onboarded", "Already onboarded"
    DUPLICATE = "duplicate-in-file", "Duplicate in file"
    INVALID = "invalid", "Invalid"


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, header, size); nothing is created."""


@dataclass
class ImportRow:
    """One data row of the file, named by its line (the header is line 1)."""

    line: int
    customer_name: str
    tenant: str  # as written in the file
    profile: str = ""
    contact_name: str = ""
    contact_email: str = ""
    days: int | None = None
    tenant_id: str = ""  # the resolved GUID, once known
    domain: str = ""  # the domain it was resolved from
    verdict: str = Verdict.WILL_CREATE
    reason: str = ""
    raw: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImportRow:
        return cls(**data)  # type: ignore[arg-type]


@dataclass
class Preview:
    filename: str
    rows: list[ImportRow]

    def count(self, verdict: str) -> int:
        return sum(1 for row in self.rows if row.verdict == verdict)

    @property
    def counts(self) -> dict[str, int]:
        return {verdict.value: self.count(verdict) for verdict in Verdict}

    def to_dict(self) -> dict[str, object]:
        return {"filename": self.filename, "rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Preview:
        rows = [ImportRow.from_dict(row) for row in data["rows"]]  # type: ignore[union-attr]
        return cls(filename=str(data["filename"]), rows=rows)


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    if b"\0" in data:
        # An .xlsx or other binary file: no CSV text holds NUL bytes.
        raise ImportFileError("The file is not CSV text (it holds NUL bytes). Save it as CSV.")
    try:
        # utf-8-sig drops the byte-order mark Excel writes, and reads plain UTF-8 alike.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"The file is not UTF-8 text (byte {exc.start}). Save it as 'CSV UTF-8'."
        ) from exc


def _delimiter(header_line: str) -> str:
    # Excel writes ';' where the decimal separator is ','. The header names hold neither, so
    # whichever appears in the header line is the separator.
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_table(data: bytes) -> tuple[tablib.Dataset, list[int], set[int]]:
    """The file as a table with normalised headers, the line each row starts on, and the
    lines that had more cells than the header has columns.

    The csv module reads the records because it reports where each one starts (tablib drops
    blank lines and does not number rows); tablib holds the table: the headers, the column
    lookup, and the dimension checks.
    """
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise ImportFileError(
            "The file is empty or its first line is blank; it needs a header line: "
            + ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    try:
        header = [name.strip().lower() for name in next(reader)]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise ImportFileError(
                f"The header line lacks the column(s) {', '.join(missing)}. Expected: "
                + ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
                + " (the first line of the file names the columns)."
            )
        unknown = [n for n in header if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown or len(set(header)) != len(header):
            raise ImportFileError(
                "The header line has unknown or repeated columns: "
                + ", ".join(sorted(set(unknown)) or header)
                + "."
            )
        table = tablib.Dataset(headers=header)
        lines: list[int] = []
        overlong: set[int] = set()
        start = reader.line_num + 1
        for record_ in reader:
            if any(cell.strip() for cell in record_):
                if any(cell.strip() for cell in record_[len(header) :]):
                    # Kept as a row so it is reported with its line, not dropped.
                    overlong.add(start)
                record_ = record_[: len(header)]
                table.append(record_ + [""] * (len(header) - len(record_)))
                lines.append(start)
                if len(lines) > MAX_ROWS:
                    raise ImportFileError(f"The file has more than {MAX_ROWS} rows.")
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(
            f"The file is not valid CSV near line {reader.line_num}: {exc}."
        ) from exc
    return table, lines, overlong


def _rows(table: tablib.Dataset, lines: list[int], overlong: set[int]) -> list[ImportRow]:
    rows = []
    for line, values in zip(lines, table.dict, strict=True):
        cells = {name: values.get(name, "").strip() for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        row = ImportRow(
            line=line,
            customer_name=cells["customer_name"],
            tenant=cells["tenant"],
            profile=cells["profile"],
            contact_name=cells["contact_name"],
            contact_email=cells["contact_email"],
            raw=cells,
        )
        if line in overlong:
            _invalid(row, "more cells than the header has columns")
        rows.append(row)
    return rows


def _invalid(row: ImportRow, reason: str) -> None:
    row.verdict, row.reason = Verdict.INVALID, reason


def _resolve_domains(
    domains: Iterable[str],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, uuid.UUID | TenantLookupError]:
    """Each distinct domain looked up once, `workers` at a time (each lookup is one HTTPS
    round trip to Entra; a file of 2,000 domains one after another would take minutes).
    `progress(done, total)` is called in this thread as lookups finish."""

    def lookup(domain: str) -> uuid.UUID | TenantLookupError:
        try:
            return tenant_id_for_domain(domain)
        except TenantLookupError as exc:
            return exc

    unique = sorted(set(domains))
    if not unique:
        return {}
    found: dict[str, uuid.UUID | TenantLookupError] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        for domain, result in zip(unique, pool.map(lookup, unique), strict=True):
            found[domain] = result
            if progress is not None:
                progress(len(found), len(unique))
    return found


# Which column of the file each form field came from, for the reasons shown.
_COLUMN_OF = {"access_profile": "profile", "__all__": "contact_name"}


def _validate(row: ImportRow, resolved: dict[str, uuid.UUID | TenantLookupError]) -> None:
    tenant = row.tenant
    if not tenant:
        return _invalid(row, "tenant is empty (give a tenant ID or a verified domain)")
    if GUID_PATTERN.match(tenant):
        tenant_id = uuid.UUID(tenant)
    elif DOMAIN_PATTERN.match(tenant.lower()):
        found = resolved[tenant.lower()]
        if isinstance(found, TenantLookupError):
            return _invalid(row, f"domain does not resolve: {found}")
        tenant_id, row.domain = found, tenant.lower()
    else:
        return _invalid(row, "tenant is neither a tenant ID (GUID) nor a domain name")
    row.tenant_id = str(tenant_id)
    if row.tenant_id == str(settings.ENTRA_HOME_TENANT_ID).lower():
        return _invalid(row, "this is the home tenant (the MSSP's own), not a customer")
    form = InvitationForm(
        data={
            "customer_name": row.customer_name,
            "tenant": row.tenant_id,  # already resolved: the form does not look it up again
            "access_profile": row.profile or profiles.DEFAULT_PROFILE,
            "days": row.raw.get("days") or settings.INVITATION_DEFAULT_DAYS,
            "contact_name": row.contact_name,
            "contact_email": row.contact_email,
        },
        check_rules=False,
    )
    if not form.is_valid():
        problems = []
        for name, errors in form.errors.items():
            if name == "access_profile":
                problems.append(
                    f"unknown profile '{row.profile}' (known: {', '.join(profiles.PROFILES)})"
                )
            elif name == "contact_email":
                problems.append(f"malformed contact_email '{row.contact_email}'")
            else:
                problems.append(f"{_COLUMN_OF.get(name, name)}: {' '.join(errors)}")
        return _invalid(row, "; ".join(problems))
    data = form.cleaned_data
    row.customer_name = data["customer_name"]
    row.profile = data["access_profile"]
    row.days = data["days"]
    row.contact_name = data["contact_name"]
    row.contact_email = data["contact_email"]
    return None


def _mark_existing(rows: list[ImportRow]) -> None:
    """Rows still "will create" whose tenant is onboarded or already invited become
    "already onboarded"; a second row for one tenant becomes "duplicate in file"."""
    first_line: dict[str, int] = {}
    for row in rows:
        if row.verdict == Verdict.INVALID:
            continue
        if row.tenant_id in first_line:
            row.verdict = Verdict.DUPLICATE
            row.reason = f"same tenant as line {first_line[row.tenant_id]}"
        else:
            first_line[row.tenant_id] = row.line
            row.verdict, row.reason = Verdict.WILL_CREATE, ""
    ids = list(first_line)
    onboarded = dict(
        Tenant.objects.active().filter(tenant_id__in=ids).values_list("tenant_id", "status")
    )
    invited = set(
        Invitation.objects.usable()
        .filter(expected_tenant_id__in=ids)
        .values_list("expected_tenant_id", flat=True)
    )
    for row in rows:
        if row.verdict != Verdict.WILL_CREATE:
            continue
        tenant_id = uuid.UUID(row.tenant_id)
        if tenant_id in onboarded:
            row.verdict = Verdict.ALREADY_ONBOARDED
            row.reason = f"tenant already onboarded ({Tenant.Status(onboarded[tenant_id]).label})"
        elif tenant_id in invited:
            row.verdict = Verdict.ALREADY_ONBOARDED
            row.reason = "an open invitation for this tenant exists"


def preview(
    data: bytes,
    *,
    filename: str = "",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Preview:
    """Every row of the file with its verdict; changes nothing. Raises ImportFileError when
    the file as a whole cannot be read. `progress(done, total)` follows the domain lookups."""
    rows = _rows(*read_table(data))
    domains = [
        row.tenant.lower()
        for row in rows
        if row.verdict != Verdict.INVALID
        and row.tenant
        and not GUID_PATTERN.match(row.tenant)
        and DOMAIN_PATTERN.match(row.tenant.lower())
    ]
    resolved = _resolve_domains(domains, workers or settings.IMPORT_LOOKUP_WORKERS, progress)
    for row in rows:
        if row.verdict != Verdict.INVALID:
            _validate(row, resolved)
    _mark_existing(rows)
    return Preview(filename=filename, rows=rows)


def confirm(
    result: Preview,
    *,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> list[Invitation]:
    """Create the invitations of the rows that are still "will create", in one transaction.

    The verdicts are checked again against the database first: another import, or an
    invitation made by hand since the preview, turns a row into "already onboarded".
    """
    created: list[Invitation] = []
    with transaction.atomic():
        _mark_existing(result.rows)
        for row in result.rows:
            if row.verdict != Verdict.WILL_CREATE:
                continue
            created.append(
                Invitation.objects.create_invitation(
                    customer_name=row.customer_name,
                    expected_tenant_id=uuid.UUID(row.tenant_id),
                    expected_domain=row.domain,
                    access_profile=row.profile,
                    days=row.days or settings.INVITATION_DEFAULT_DAYS,
                    actor=actor,
                    contact_name=row.contact_name,
                    contact_email=row.contact_email,
                )
            )
            if progress is not None:
                progress(len(created))
        counts = result.counts
        record(
            "invitations.imported",
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            detail={
                "file": result.filename,
                "rows": len(result.rows),
                "created": len(created),
                "already_onboarded": counts[Verdict.ALREADY_ONBOARDED],
                "duplicates": counts[Verdict.DUPLICATE],
                "invalid": counts[Verdict.INVALID],
            },
        )
    return created
