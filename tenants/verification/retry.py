"""Backoff for transient answers (429, 5xx, time-outs), honouring Retry-After.

The engine owns its retries instead of leaving them to azure-core (3 retries, each waiting
as long as Retry-After says, up to minutes): a throttled tenant must cost one worker thread
a bounded wait, then give up with "transient" and let the scheduler come back, while the
other tenants of the batch go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

from django.conf import settings
from django.utils import timezone


@dataclass(frozen=True)
class Policy:
    retries: int  # further attempts after the first
    base_delay: float  # seconds; doubled each time when no Retry-After is given
    max_delay: float  # a Retry-After longer than this is not waited for in line

    @classmethod
    def from_settings(cls) -> Policy:
        return cls(
            retries=settings.VERIFY_RETRIES,
            base_delay=settings.VERIFY_RETRY_BASE_DELAY,
            max_delay=settings.VERIFY_RETRY_MAX_DELAY,
        )

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to stop retrying."""
        if attempt >= self.retries:
            return None
        delay = retry_after if retry_after is not None else self.base_delay * 2**attempt
        if delay > self.max_delay:
            return None
        return max(delay, 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - timezone.now()).total_seconds(), 0.0)


class Answer(Protocol):
    retryable: bool  # a 429, 5xx or time-out
    retry_after: float | None  # what the answer's Retry-After asked for


A = TypeVar("A", bound=Answer)


def run(
    call: Callable[[], A], policy: Policy, sleep: Callable[[float], None] = time.sleep
) -> tuple[A, int]:
    """Call until the answer is final or the policy gives up; returns (last answer, retries
    made)."""
    attempt = 0
    while True:
        answer = call()
        if not answer.retryable:
            return answer, attempt
        delay = policy.delay(attempt, answer.retry_after)
        if delay is None:
            return answer, attempt
        sleep(delay)
        attempt += 1
