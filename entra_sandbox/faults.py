"""Fault injection and request counters, both keyed by endpoint kind and tenant."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

KINDS = (
    "mi",
    "discovery",
    "token",
    "consent",
    "authorize",
    "jwks",
    "graph",
    "defender",
    "mde",
    "arm",
    "loganalytics",
)
FAULT_TARGETS = (*KINDS, "*")
# A hang lasts until the faults are cleared or the sandbox stops; this only bounds it.
MAX_HANG_SECONDS = 3600


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_kind: Counter[str] = Counter()
            self._by_tenant: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record(self, kind: str, tenant: str | None) -> None:
        with self._lock:
            self._total += 1
            self._by_kind[kind] += 1
            if tenant:
                self._by_tenant[tenant][kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "by_kind": dict(self._by_kind),
                "by_tenant": {t: dict(c) for t, c in self._by_tenant.items()},
            }


@dataclass
class Fault:
    id: str
    target: str
    tenant: str | None = None
    latency_ms: int = 0
    status: int | None = None
    retry_after: int | None = None
    hang: bool = False
    count: int | None = None
    # The token endpoint answers normally but its tokens name this tenant (`tid`, `iss`),
    # as a mix-up would: what a client's check of `tid` must catch.
    tid: str | None = None

    def matches(self, kind: str, tenant: str | None) -> bool:
        if self.target not in ("*", kind):
            return False
        return self.tenant is None or self.tenant == tenant


@dataclass
class FaultEffect:
    """What the matching faults do to one request."""

    latency_ms: int = 0
    status: int | None = None
    retry_after: int | None = None
    hang: bool = False
    tid: str | None = None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        # Set when faults are cleared or the sandbox stops: releases hanging requests.
        self._release = threading.Event()

    def add(
        self,
        target: str,
        tenant: str | None = None,
        latency_ms: int | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        hang: bool = False,
        count: int | None = None,
        tid: str | None = None,
    ) -> Fault:
        if target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target {target!r}; one of {', '.join(FAULT_TARGETS)}")
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count is not None and int(count) < 1:
            raise ValueError("count must be at least 1")
        if tid is not None:
            try:
                tid = str(uuid.UUID(str(tid)))
            except ValueError:
                raise ValueError("tid must be a tenant GUID") from None
        if not (latency_ms or status or hang or tid):
            raise ValueError("a fault needs latency_ms, status, hang or tid")
        with self._lock:
            fault = Fault(
                id=str(next(self._ids)),
                target=target,
                tenant=tenant.lower() if tenant else None,
                latency_ms=int(latency_ms or 0),
                status=int(status) if status is not None else None,
                retry_after=int(retry_after) if retry_after is not None else None,
                hang=bool(hang),
                count=int(count) if count is not None else None,
                tid=tid,
            )
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._release.set()
            self._release = threading.Event()

    def release_all(self) -> None:
        with self._lock:
            self._release.set()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [vars(f).copy() for f in self._faults]

    def take(self, kind: str, tenant: str | None) -> FaultEffect:
        """Consume the faults matching one request (count-limited ones run down)."""
        effect = FaultEffect()
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(kind, tenant):
                    continue
                effect.latency_ms += fault.latency_ms
                effect.hang = effect.hang or fault.hang
                if fault.status and effect.status is None:
                    effect.status, effect.retry_after = fault.status, fault.retry_after
                effect.tid = effect.tid or fault.tid
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
            release = self._release
        if effect.latency_ms:
            time.sleep(effect.latency_ms / 1000)
        if effect.hang:
            release.wait(MAX_HANG_SECONDS)
        return effect
