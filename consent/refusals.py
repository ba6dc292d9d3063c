"""What a consent refused by Microsoft means, read narrowly from its redirect.

Entra reports some refusals only in `error_description`, which anyone can write into a URL.
Two facts are taken from it and nothing else: the AADSTS code it starts with, and which of
the cloud's resources it names by their first-party application id (AADSTS650052: the
organisation has no service principal for a service the app asks for). Neither is displayed
as sent; both stay a hint, like the rest of the redirect: nothing is granted or recorded on
the strength of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssp_portal import clouds

MISSING_SERVICE = "AADSTS650052"

_CODE = re.compile(r"\A(AADSTS\d{5,7}):")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Refusal:
    code: str  # e.g. "AADSTS650052"; "" when the description does not start with one
    missing: tuple[str, ...] = ()  # resource keys the organisation lacks (650052 only)

    @property
    def missing_service(self) -> bool:
        return self.code == MISSING_SERVICE


def read(description: str, cloud: clouds.Cloud) -> Refusal:
    match = _CODE.match(description)
    if match is None:
        return Refusal("")
    code = match.group(1)
    if code != MISSING_SERVICE:
        return Refusal(code)
    missing = []
    for app_id in _GUID.findall(description):
        resource = cloud.resource_by_app_id(app_id)
        if resource is not None and resource.key not in missing:
            missing.append(resource.key)
    return Refusal(code, tuple(missing))
