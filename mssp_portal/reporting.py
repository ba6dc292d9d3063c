"""Django's error reports (the ADMINS mail, the DEBUG page) without tokens.

Functions that hold a token or an assertion are marked with `sensitive_variables`, which
hides their variables and the same-named ones of every frame they call. This reporter is
the net under it: anything shaped like a JWT left in a report (a library's frame, an
exception message) is replaced before the report is rendered to anyone.
"""

from __future__ import annotations

import re

from django.views.debug import ExceptionReporter

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
REDACTED = "[token removed]"


def redact_tokens(text: str) -> str:
    return JWT.sub(REDACTED, text)


class TokenSafeExceptionReporter(ExceptionReporter):
    def get_traceback_html(self) -> str:
        return redact_tokens(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return redact_tokens(super().get_traceback_text())
