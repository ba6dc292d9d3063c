"""The second factor of break-glass accounts (django-otp): a TOTP authenticator and ten
single-use recovery codes, enrolled by an administrator (`manage.py break_glass enrol`).
A local account without them cannot sign in."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.views.decorators.debug import sensitive_variables
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.log import record

RECOVERY_CODES = 10
DEVICE_NAME = "break-glass"


@dataclass(frozen=True)
class Enrolment:
    """What the administrator hands to the account's holder, once: nothing of it is
    shown again (the codes are kept, the holder's copy is the only readable one)."""

    config_url: str
    secret: str
    recovery_codes: list[str]


@sensitive_variables("codes", "totp")
def enrol(user: AbstractBaseUser, *, actor: str) -> Enrolment:
    """Replace the user's second factor: a new TOTP key and new recovery codes. Audited
    `user.second_factor_enrolled`."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        totp = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
        static = StaticDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=static, token=c) for c in codes)
        record(
            "user.second_factor_enrolled",
            "success",
            actor=actor,
            detail={"user": user.get_username(), "recovery_codes": RECOVERY_CODES},
        )
    secret = totp.config_url.split("secret=", 1)[1].split("&", 1)[0]
    return Enrolment(config_url=totp.config_url, secret=secret, recovery_codes=codes)


def is_enrolled(user: AbstractBaseUser) -> bool:
    return any(True for _ in devices_for_user(user))


@sensitive_variables("code")
def verify(user: AbstractBaseUser, code: str) -> Device | None:
    """The device that accepts `code` (the authenticator's current code, or an unused
    recovery code, which is then used up), or None. Each device throttles its own
    failures (django-otp)."""
    code = "".join(code.split())
    if not code:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, for_verify=True):
            if device.verify_token(code):
                return device
    return None


def describe(device: Device) -> dict[str, object]:
    """For the audit record: which factor was used, and recovery codes left."""
    if isinstance(device, StaticDevice):
        return {"second_factor": "recovery_code", "recovery_codes_left": device.token_set.count()}
    return {"second_factor": "totp"}
