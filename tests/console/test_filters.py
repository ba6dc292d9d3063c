"""The console's template filters say durations and times in words a person reads right."""

from __future__ import annotations

from datetime import timedelta

import pytest

from console.templatetags.console import took


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (timedelta(milliseconds=42), "42 ms"),
        (timedelta(microseconds=200), "1 ms"),
        (timedelta(milliseconds=999), "999 ms"),
        (timedelta(seconds=1.25), "1.2 s"),
        (timedelta(seconds=7), "7.0 s"),
    ],
)
def test_took_never_says_zero_seconds(value, shown):
    assert took(value) == shown
