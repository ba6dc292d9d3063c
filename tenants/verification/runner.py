"""Running verifications: claim a row, check the tenant resource by resource, record it.

`run_verification(code)` is idempotent: it claims the verification with a conditional
UPDATE (queued → running, or running whose lease expired → running again) and does nothing
if another worker holds it or it is done. The lease is renewed between resources; the final
write is conditional on still holding it (the claim count is the fencing token), so a
worker that was presumed dead cannot overwrite the result of the one that took over.

`run_batch(codes)` runs many with a bounded thread pool (VERIFY_CONCURRENCY): each tenant's
waits (latency, Retry-After) overlap with the others', and a throttled tenant holds one
thread for a bounded time, not the batch. In the task worker's batches, a thread with nothing
left of its own batch takes queued verifications of other batches while the slow one runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import Case, When
from django.utils import timezone

from audit.log import record
from mssp_portal import clouds, identity
from tenants import notices
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.profiles import Requirement
from tenants.verification import classify, diagnosis, probes, retry, rows
from tenants.verification.exchange import Exchange, TokenAnswer, unverified_claims

logger = logging.getLogger("mssp_portal.verification")

Outcome = Verification.Outcome
ASSERTION_TIME_INVALID = 700024
# What Entra answers while a new consent propagates: the app is not (yet) in the tenant.
CONSENT_NOT_YET_THERE = frozenset({700016, 65001, 7000229})
PROPAGATING = "consent_propagating"


class LeaseLost(Exception):
    """Another worker took the verification over (this one was presumed dead)."""


@dataclass
class Result:
    outcome: str
    diagnosis: str
    error_code: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    platform: dict[str, Any] = field(default_factory=dict)

    @property
    def exchanged(self) -> bool:
        """A token was obtained: identity, federated credential and clock all work."""
        return any(r.get("token") == "ok" for r in self.results.values())


# -- claiming -----------------------------------------------------------------------------


def _lease_end():
    return timezone.now() + timedelta(seconds=settings.VERIFY_LEASE)


def claim(code: str) -> Verification | None:
    """Take the verification for this worker, or None if it is not claimable. Each of its
    two statements is asked again on a new connection if the database dropped the old one
    (the second one must not repeat the first: that one would find the row taken)."""
    try:
        claimed = _reconnecting(lambda: rows.claim(code, timezone.now(), _lease_end()))
    except ValidationError:  # not a UUID
        return None
    if not claimed:
        return None
    return _reconnecting(lambda: rows.read(code))


def _renew_lease(verification: Verification) -> None:
    """Extend the lease once half of it is used up (a write per resource would cost a fleet
    more than the lease protects); raises LeaseLost if another worker has taken over."""
    remaining = verification.lease_expires_at - timezone.now()
    if remaining > timedelta(seconds=settings.VERIFY_LEASE / 2):
        return
    lease_end = _lease_end()
    if not rows.update_holding(verification, lease_expires_at=lease_end):
        raise LeaseLost(str(verification.code))
    verification.lease_expires_at = lease_end


# -- running ------------------------------------------------------------------------------


def run_verification(code: str, resolve_alerts: bool = True) -> Verification | None:
    """Claim and run one verification; returns it finished, or None when there was nothing
    for this worker to do (already running elsewhere, done, unknown, or taken over).
    `resolve_alerts=False`: the caller knows no platform alert is open."""
    verification = claim(code)
    if verification is None:
        return None
    try:
        result = check(verification)
    except LeaseLost:
        logger.warning("verification %s: lease lost, another worker has it", code)
        return None
    except Exception:
        logger.exception("verification %s: unexpected error", code)
        result = Result(Outcome.TRANSIENT, "internal_error")
    return _reconnecting(lambda: finish(verification, result, resolve_alerts=resolve_alerts))


# Waits before asking the database again after its connection broke (a restart, a failover):
# about half a minute in all, then the error stands and the lease takes over.
RECONNECT_DELAYS = (0.2, 0.5, 1, 2, 4, 8, 15)


def _reconnecting(call: Callable[[], Any], sleep: Callable[[float], None] = time.sleep) -> Any:
    """`call`, again on a new connection while the database cannot be reached. Claiming and
    finishing are conditional updates: a repeat after a lost answer changes nothing twice
    (a finish whose first commit did land finds the lease gone and returns None)."""
    for delay in (*RECONNECT_DELAYS, None):
        try:
            return call()
        except (OperationalError, InterfaceError):
            if delay is None or transaction.get_connection().in_atomic_block:
                raise
            logger.warning("verification: database unreachable, retrying in %s s", delay)
            _drop_broken_connections()
            sleep(delay)
    raise AssertionError("unreachable")


def run_batch(
    codes: Sequence[str], concurrency: int | None = None, *, help_others: bool = False
) -> list[Verification | None]:
    """Run verifications in parallel, at most `concurrency` (VERIFY_CONCURRENCY) at once;
    returns them in the order of `codes`.

    A platform fault (managed identity, federated credential) is the MSSP's and the same for
    every tenant: once one verification of the batch meets it, the rest are not sent to
    Entra; they finish at once as held back by that fault, their tenants untouched (one
    alert, no retries per tenant). While a platform alert is open, a batch first runs one
    verification alone to see whether the fault is still there.

    Each thread keeps its database connection from one verification to the next (a new
    connection per verification was a tenth of its CPU, more on PostgreSQL), drops it as
    soon as it is broken (a database restart: the next verification connects again), and
    closes it before the batch returns.

    `help_others` (the task worker's batches): a thread that has run out of this batch's
    verifications while another thread is still busy takes a queued verification of
    another batch instead of waiting idle (one somebody waits for first), for
    VERIFY_HELP_SECONDS from the batch's start; then the task ends as soon as what runs has
    finished, and the worker's other tasks, notifications among them, get their turn. One
    slow tenant (a hanging API, Retry-After, a consent still propagating) then holds one
    thread, not the batch's others and the worker with them. Claims are conditional, so
    the batch a taken verification belongs to finds it done and skips it.
    """
    codes = [str(c) for c in codes]
    if not codes:
        return []
    workers = max(1, min(concurrency or settings.VERIFY_CONCURRENCY, len(codes)))
    fault: list[Verification] = []
    # Verifications that could not reach Entra's token endpoint at all, while none of the
    # batch has: after UNREACHABLE_HOLD_BACK of them the rest are not tried either.
    unreachable: list[Verification] = []
    reached: list[bool] = []
    # Without an open alert at the start, no verification of this batch needs to look for
    # one to resolve (one opened meanwhile is resolved by the next batch's first success).
    alerts_open = PlatformAlert.objects.open().exists()
    results: list[Verification | None] = [None] * len(codes)
    running = [0]  # verifications this batch's threads run now, its own and taken ones
    help_until = time.monotonic() + settings.VERIFY_HELP_SECONDS
    tried = set(codes)
    lock = threading.Lock()

    def holding_back() -> bool:
        return bool(fault) or (len(unreachable) >= UNREACHABLE_HOLD_BACK and not reached)

    def run(code: str) -> Verification | None:
        with lock:
            running[0] += 1
        try:
            verification = _run_in_thread(code, resolve_alerts=alerts_open)
        finally:
            with lock:
                running[0] -= 1
        if verification is not None:
            if verification.outcome == Outcome.PLATFORM_ERROR:
                fault.append(verification)
            elif _entra_unreachable(verification):
                unreachable.append(verification)
            else:
                reached.append(True)
        return verification

    def one(index: int) -> None:
        code = codes[index]
        if fault:
            results[index] = _hold_back(code, fault[0], Outcome.PLATFORM_ERROR)
        elif holding_back():
            results[index] = _hold_back(code, unreachable[0], Outcome.TRANSIENT)
        else:
            results[index] = run(code)

    def help_out() -> bool:
        """Run one queued verification of another batch while another thread of this one
        is still busy; False when nothing runs, there is none to take, the batch has helped
        for VERIFY_HELP_SECONDS, or it met a fault."""
        with lock:
            if not running[0] or time.monotonic() > help_until or holding_back():
                return False
            exclude = list(tried)
        code = _next_queued(exclude)
        if code is None:
            return False
        with lock:
            tried.add(code)
        run(code)  # None if another worker claimed it first: the next one is asked for
        return True

    start = 0
    if alerts_open:
        _in_threads([0], one, 1)
        start = 1
    _in_threads(range(start, len(codes)), one, workers, help_out if help_others else None)
    if unreachable and not reached and not fault and len(codes) > 1:
        _raise_unreachable_alert(unreachable[0], len(codes))
    return results


# After this many verifications of a batch found Entra unreachable, and none reached it, the
# rest of the batch is not sent (each would spend its time-outs and retries on it).
UNREACHABLE_HOLD_BACK = 3


def _entra_unreachable(verification: Verification) -> bool:
    """The verification's first token request never got an answer (connection refused,
    reset or timed out, after its retries)."""
    first = next(iter(verification.results.values()), None) or {}
    return (
        verification.outcome == Outcome.TRANSIENT
        and first.get("token") == "failed"
        and first.get("diagnosis") == "network_error"
    )


def _raise_unreachable_alert(verification: Verification, count: int) -> None:
    """A whole batch without one answer from Entra: the MSSP's network, not the tenants'."""
    authority = clouds.current().authority
    alert, opened = PlatformAlert.raise_alert(
        "entra_unreachable",
        "The portal cannot reach Entra's token endpoint",
        f"None of the {count} verifications of the last batch got an answer from {authority} "
        "(connection refused, reset or timed out). Check the worker's outbound network, "
        "proxy and DNS towards that address. The tenants keep their status, marked stale, "
        "and are checked again on the next round; this alert closes at the first token "
        "obtained.",
    )
    if opened:
        record(
            "platform.alert_opened",
            "failure",
            actor="system",
            tenant_id=verification.tenant.tenant_id,
            detail={"alert": alert.key, "code": "network_error"},
        )


def _in_threads(
    indexes: Iterable[int],
    one: Callable[[int], None],
    workers: int,
    more: Callable[[], bool] | None = None,
) -> None:
    """Call `one` for every index from `workers` threads; a thread with no index left then
    calls `more` until it returns False. Each thread's database connection lives as long as
    the thread, and is closed when it ends."""
    pending = iter(indexes)
    lock = threading.Lock()

    def drain() -> None:
        try:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    break
                one(index)
                _drop_broken_connections()
            while more is not None and more():
                _drop_broken_connections()
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=drain, name=f"verify-{n}", daemon=True) for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _drop_broken_connections() -> None:
    """Close this thread's connections that an error left unusable (the server restarted
    or dropped them) or in a transaction: the next query connects again."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block or not connection.get_autocommit():
            connection.close()
        elif connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


def _next_queued(exclude: Sequence[str]) -> str | None:
    """The queued verification not in `exclude` to run next: one somebody waits for (a
    consent, a staff request) before the scheduler's, then the oldest. None when there is
    none, or when the database cannot be asked (helping out never fails a batch)."""
    scheduled_last = Case(When(trigger=Verification.Trigger.SCHEDULE, then=1), default=0)
    try:
        code = (
            Verification.objects.filter(state=Verification.State.QUEUED)
            .exclude(code__in=exclude)
            .order_by(scheduled_last, "created_at")
            .values_list("code", flat=True)
            .first()
        )
    except (OperationalError, InterfaceError):
        _drop_broken_connections()
        return None
    return None if code is None else str(code)


def _hold_back(code: str, fault: Verification, outcome: str) -> Verification | None:
    """Finish a verification of the batch without asking Entra: `fault` (a platform error,
    or Entra unreachable, met by this batch) would only repeat itself."""
    try:
        verification = claim(code)
        if verification is None:
            return None
        try:
            requirements = verification.tenant.profile.requirements
        except KeyError:
            requirements = ()
        result = Result(
            outcome,
            fault.diagnosis,
            fault.error_code,
            results={r.resource: _skipped(r) for r in requirements},
            platform={**fault.platform, "held_back_by": str(fault.code)},
        )
        return finish(verification, result)
    except Exception:
        logger.exception("verification %s: could not be recorded", code)
        return None


def _run_in_thread(code: str, resolve_alerts: bool = True) -> Verification | None:
    try:
        return run_verification(code, resolve_alerts=resolve_alerts)
    except Exception:
        # The row keeps its lease and is picked up again once it expires.
        logger.exception("verification %s: could not be recorded", code)
        return None


def check(verification: Verification) -> Result:
    """Check the tenant, resource by resource, in the order of its access profile."""
    tenant = verification.tenant
    if tenant.status == Tenant.Status.OFFBOARDED:
        # An offboarded tenant never gets a token request.
        return Result(Outcome.CANCELLED, "offboarded")
    cloud = clouds.current()
    if tenant.cloud != cloud.name:
        return Result(Outcome.NO_ACCESS, "wrong_cloud")
    client_id = settings.ENTRA_APP_CLIENT_ID
    exchange = Exchange(str(tenant.tenant_id), cloud, client_id)
    policy = retry.Policy.from_settings()
    results: dict[str, Any] = {}
    stop: tuple[str, str, str] | None = None
    incomplete: tuple[str, str, str] | None = None
    try:
        for requirement in tenant.profile.requirements:
            if stop is not None:
                results[requirement.resource] = _skipped(requirement)
                continue
            result, outcome = _check_resource(
                requirement, tenant, cloud, exchange, policy, lambda: _waiting(verification)
            )
            results[requirement.resource] = result
            found = (outcome, result["diagnosis"], result["error_code"] or _probe_code(result))
            if classify.is_definitive_stop(outcome):
                stop = found
            elif outcome == Outcome.INCOMPLETE and incomplete is None:
                incomplete = found
            _renew_lease(verification)
    finally:
        exchange.close()
    platform = {"app_client_id": client_id, "assertion": exchange.source.claims}
    if exchange.source.failure:
        platform["identity_failure"] = exchange.source.failure
    outcome, key, code = stop or incomplete or (Outcome.VERIFIED, "verified", "")
    return Result(outcome, key, code, results, platform)


def _probe_code(result: dict[str, Any]) -> str:
    status = (result.get("probe") or {}).get("status")
    return f"HTTP {status}" if status else ""


def _skipped(requirement: Requirement) -> dict[str, Any]:
    return {
        "token": "skipped",
        "error": "",
        "error_code": "",
        "http_status": None,
        "tid_matches": None,
        "roles_seen": [],
        "roles_required": list(requirement.permissions),
        "roles_missing": [],
        "probe": None,
        "diagnosis": "",
    }


def _check_resource(
    requirement: Requirement,
    tenant: Tenant,
    cloud: clouds.Cloud,
    exchange: Exchange,
    policy: retry.Policy,
    waiting: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Any], str]:
    """One resource: token, tid, roles, probe. Returns (result, outcome). `waiting` is
    called before each wait for a consent that is still propagating."""
    result = _skipped(requirement)
    resource = cloud.resources.get(requirement.resource)
    if resource is None:
        result["diagnosis"] = "resource_unavailable_in_cloud"
        return result, Outcome.INCOMPLETE

    answer, retries = retry.run(lambda: exchange.request(resource.scope), policy)
    if answer.code == ASSERTION_TIME_INVALID:
        # Maybe only the cached assertion is too old (or too new) for Entra: ask the identity
        # for a fresh one, once. If that is refused too, the clock is off.
        identity.forget_assertion()
        answer, more = retry.run(lambda: exchange.request(resource.scope), policy)
        retries += 1 + more
    answer, more = _await_consent(answer, tenant, lambda: exchange.request(resource.scope), waiting)
    retries += more
    result.update(
        token="ok" if answer.ok else "failed",
        error=answer.error,
        error_code=answer.error_code,
        http_status=answer.status if not answer.ok else 200,
        retries=retries,
    )
    if not answer.ok:
        key, outcome = token_failure(answer)
        result["diagnosis"] = key
        return result, outcome

    claims = unverified_claims(answer.token)
    roles = [str(r) for r in claims.get("roles") or [] if isinstance(r, str)]
    result["tid_matches"] = str(claims.get("tid", "")).lower() == str(tenant.tenant_id).lower()
    result["roles_seen"] = sorted(roles)
    result["roles_missing"] = [p for p in requirement.permissions if p not in roles]
    if not result["tid_matches"]:
        # Not this tenant's token: it is not sent anywhere.
        result["diagnosis"] = "tenant_mismatch"
        return result, Outcome.NO_ACCESS

    session = identity.pooled_session()
    try:
        probe, probe_retries = retry.run(
            lambda: probes.probe(requirement.resource, answer.token, tenant, cloud, session),
            policy,
        )
    except probes.NotConfigured as exc:
        result["probe"] = {"status": None, "ok": False, "detail": str(exc)}
        result["diagnosis"] = "loganalytics_not_configured"
        return result, Outcome.INCOMPLETE
    result["probe"] = probe.as_result()
    result["retries"] += probe_retries
    if probe.organization:
        result["organization"] = probe.organization
    if probe.ok:
        if result["roles_missing"]:
            result["diagnosis"] = "role_missing"
            return result, Outcome.INCOMPLETE
        result["diagnosis"] = "verified"
        return result, Outcome.VERIFIED
    if probe.empty:
        result["diagnosis"] = "arm_no_subscriptions"
        return result, Outcome.INCOMPLETE
    if probe.network_error:
        result["diagnosis"] = "network_error"
        return result, Outcome.TRANSIENT
    key, outcome = classify.probe_error(
        requirement.resource, probe.status or 0, bool(result["roles_missing"])
    )
    result["diagnosis"] = key
    return result, outcome


def _await_consent(
    answer: TokenAnswer,
    tenant: Tenant,
    ask: Callable[[], TokenAnswer],
    waiting: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[TokenAnswer, int]:
    """Within CONSENT_PROPAGATION_GRACE of the tenant's recorded consent, and before any
    check has reached a verdict since, "the app is not in this tenant" means Microsoft is
    still applying the consent: ask again, waiting 1, 2, 4… (at most 10) seconds, until the
    answer changes or the window would end. Otherwise the answer stands (a consent revoked
    after onboarding is "no access" at once)."""
    reported = (
        tenant.consent_reported_at if tenant.status == Tenant.Status.CONSENT_REPORTED else None
    )
    grace = timedelta(seconds=settings.CONSENT_PROPAGATION_GRACE)
    delay, asked = 1.0, 0
    while (
        not answer.ok
        and answer.code in CONSENT_NOT_YET_THERE
        and reported is not None
        and timezone.now() + timedelta(seconds=delay) < reported + grace
    ):
        waiting()
        sleep(delay)
        answer = ask()
        asked += 1
        delay = min(delay * 2, 10.0)
    return answer, asked


def _waiting(verification: Verification) -> None:
    # Say so on the running verification (the landing page shows it) and keep the lease.
    if verification.diagnosis != PROPAGATING:
        rows.update_holding(verification, diagnosis=PROPAGATING)
        verification.diagnosis = PROPAGATING
    _renew_lease(verification)


def token_failure(answer: TokenAnswer) -> tuple[str, str]:
    """(diagnosis key, outcome) for a token request that failed."""
    if answer.kind == "identity":
        return "identity_unavailable", Outcome.PLATFORM_ERROR
    if answer.kind == "network":
        return "network_error", Outcome.TRANSIENT
    if answer.kind == "config":
        return "exchange_rejected", Outcome.PLATFORM_ERROR
    return classify.token_error(answer.error, answer.status, answer.code)


# -- recording ----------------------------------------------------------------------------


def finish(
    verification: Verification, result: Result, resolve_alerts: bool = True
) -> Verification | None:
    """Record the result and apply it to the tenant, if this worker still holds the lease.
    A token obtained resolves the open platform alerts (`resolve_alerts=False`: there are
    none, the caller looked)."""
    now = timezone.now()
    with transaction.atomic():
        done = rows.update_holding(
            verification,
            state=Verification.State.DONE,
            outcome=result.outcome,
            diagnosis=result.diagnosis,
            error_code=result.error_code[:32],
            results=result.results,
            platform=result.platform,
            finished_at=now,
            lease_expires_at=None,
        )
        if not done:
            logger.warning("verification %s: lease lost before recording", verification.code)
            return None
        verification.state = Verification.State.DONE
        verification.outcome = result.outcome
        verification.diagnosis = result.diagnosis
        verification.error_code = result.error_code[:32]
        verification.results = result.results
        verification.platform = result.platform
        verification.finished_at = now
        verification.lease_expires_at = None

        tenant = verification.tenant
        before = tenant.status
        first_check = tenant.last_checked_at is None
        fields = tenant.record_verification(verification)
        # Conditional, not a locked re-read: if the tenant was offboarded meanwhile, the
        # result stays in its history and the tenant is left alone.
        applied = rows.update_tenant(tenant, fields)
        if applied and tenant.status != before:
            record(
                "tenant.status_changed",
                "success",
                actor="system",
                tenant_id=tenant.tenant_id,
                detail={
                    "from": before,
                    "to": tenant.status,
                    "diagnosis": result.diagnosis,
                    "verification": verification.code,
                },
            )
        if result.outcome == Outcome.PLATFORM_ERROR:
            _raise_alert(verification)
        elif result.exchanged and resolve_alerts:
            PlatformAlert.resolve_open()
        if applied:
            notices.verification_finished(verification, tenant, before, first_check=first_check)
    logger.info(
        "verification %s tenant=%s outcome=%s diagnosis=%s code=%s attempt=%s",
        verification.code,
        tenant.tenant_id,
        result.outcome,
        result.diagnosis,
        result.error_code or "-",
        verification.attempts,
    )
    return verification


def _raise_alert(verification: Verification) -> None:
    explanation = diagnosis.describe(verification)
    detail = "\n".join([explanation.meaning, *explanation.remediation])
    alert, opened = PlatformAlert.raise_alert(explanation.key, explanation.title, detail)
    if opened:
        record(
            "platform.alert_opened",
            "failure",
            actor="system",
            tenant_id=verification.tenant.tenant_id,
            detail={"alert": alert.key, "code": verification.error_code},
        )
