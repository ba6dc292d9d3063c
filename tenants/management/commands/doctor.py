"""manage.py doctor

Checks the MSSP's own side before any customer is onboarded: the settings, the managed
identity (reachable, and the claims of its token), and a token exchange in the home tenant,
which proves the federated identity credential. When the exchange fails it prints exactly
which federated credential values must exist. Exit code 1 when anything fails.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mssp_portal import clouds, identity
from tenants import profiles
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification import diagnosis, retry
from tenants.verification.exchange import Exchange, assertion_claims, unverified_claims
from tenants.verification.runner import token_failure

TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
_DIRECTORY = ("Directory.Read.All", "Directory.ReadWrite.All")
# The Graph application permissions the staff re-check (accounts/graph.py) needs in the
# home tenant: (least privileged, every permission that also covers it).
STAFF_RECHECK_PERMISSIONS = [
    ("Application.Read.All", ("Application.Read.All", "Application.ReadWrite.All", *_DIRECTORY)),
    ("User.Read.All", ("User.Read.All", "User.ReadWrite.All", *_DIRECTORY)),
    (
        "GroupMember.Read.All",
        ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", *_DIRECTORY),
    ),
]


class Command(BaseCommand):
    help = "Check settings, the managed identity and the federated credential (home tenant)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.failures = 0
        cloud = self._settings()
        if cloud is None:
            self._give_up()
        claims = self._identity(cloud)
        if claims is None:
            self._give_up()
        self._exchange(cloud, claims)
        if self.failures:
            self._give_up()
        self.stdout.write(self.style.SUCCESS("doctor: the home side is ready."))

    # -- output ----------------------------------------------------------------------------

    def _ok(self, text: str) -> None:
        self.stdout.write(f"  ok    {text}")

    def _fail(self, text: str) -> None:
        self.failures += 1
        self.stdout.write(self.style.ERROR(f"  FAIL  {text}"))

    def _info(self, text: str) -> None:
        self.stdout.write(f"        {text}")

    def _give_up(self) -> None:
        raise CommandError(f"doctor found {self.failures} problem(s)", returncode=1)

    # -- checks ----------------------------------------------------------------------------

    def _settings(self) -> clouds.Cloud | None:
        self.stdout.write("Settings")
        try:
            cloud = clouds.current()
            self._ok(f"ENTRA_CLOUD = {cloud.name} (authority {cloud.authority or '-'})")
        except ValueError as exc:
            self._fail(f"ENTRA_CLOUD: {exc}")
            cloud = None
        for name in ("ENTRA_HOME_TENANT_ID", "ENTRA_APP_CLIENT_ID"):
            self._guid(name)
        token_file = settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE
        if token_file:
            if Path(token_file).is_file():
                self._ok(f"ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE = {token_file}")
            else:
                self._fail(f"ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE: {token_file} does not exist")
        else:
            self._guid("ENTRA_MANAGED_IDENTITY_CLIENT_ID")
        bundle = settings.ENTRA_CA_BUNDLE
        if bundle and not Path(bundle).is_file():
            self._fail(f"ENTRA_CA_BUNDLE: {bundle} does not exist")
        elif bundle:
            self._ok(f"ENTRA_CA_BUNDLE = {bundle}")
        if cloud is not None and cloud.name == "sandbox":
            if not cloud.authority.startswith("https://"):
                self._fail("AZURE_AUTHORITY_HOST: the sandbox's https authority is not set")
            missing = [k for k, r in cloud.resources.items() if not r.base_url]
            if missing:
                self._fail(f"sandbox resource URLs missing: {', '.join(missing)}")
        return cloud if not self.failures else None

    def _guid(self, name: str) -> None:
        value = getattr(settings, name)
        try:
            uuid.UUID(value)
        except (ValueError, TypeError, AttributeError):
            self._fail(f"{name}: {value!r} is not a GUID")
            return
        self._ok(f"{name} = {value}")

    def _identity(self, cloud: clouds.Cloud) -> dict[str, Any] | None:
        self.stdout.write("Managed identity")
        identity.forget_assertion()
        try:
            token = identity.assertion()
        except Exception as exc:
            self._fail(f"no token from the managed identity ({type(exc).__name__})")
            self._info(
                "Check that the user-assigned identity "
                f"{settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID} is attached to this host and "
                "that its endpoint (IMDS or IDENTITY_ENDPOINT) is reachable."
            )
            return None
        claims = assertion_claims(token)
        self._ok("token obtained for " + cloud.fic_audience)
        for name in ("iss", "sub", "aud", "tid", "azp"):
            self._info(f"{name:<4}= {claims.get(name, '-')}")
        home = settings.ENTRA_HOME_TENANT_ID.lower()
        if str(claims.get("tid", "")).lower() != home:
            self._fail(
                f"the identity is in tenant {claims.get('tid')}, not the home tenant {home}: "
                "the identity and the app must be in the same tenant"
            )
        expected_iss = cloud.issuer(settings.ENTRA_HOME_TENANT_ID)
        if claims.get("iss") != expected_iss:
            self._fail(f"issuer {claims.get('iss')!r}, expected {expected_iss!r}")
        client_id = settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID.lower()
        if not settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE and str(
            claims.get("azp", "")
        ).lower() not in ("", client_id):
            self._fail(f"token of identity {claims.get('azp')}, expected {client_id}")
        if str(claims.get("aud", "")).lower() not in (
            cloud.fic_audience.lower(),
            TOKEN_EXCHANGE_APP_ID,
        ):
            self._fail(f"audience {claims.get('aud')!r}, expected {cloud.fic_audience}")
        return claims

    def _staff_recheck(self, granted: set[str]) -> None:
        """The portal's Graph token in the home tenant carries what the re-check of signed-in
        staff needs; without it every Entra session ends at its first re-check."""
        missing = [
            name for name, covered in STAFF_RECHECK_PERMISSIONS if not granted & set(covered)
        ]
        if not missing:
            self._ok("Graph permissions of the staff re-check granted in the home tenant")
            return
        self._fail(
            "the portal's Graph token in the home tenant lacks "
            + ", ".join(missing)
            + ": staff sessions end at their first role re-check (STAFF_ROLE_RECHECK)"
        )
        self._info(
            "Grant these Graph application permissions to the portal's service principal in "
            "the home tenant only (README, Staff access), not on the app registration."
        )

    def _exchange(self, cloud: clouds.Cloud, claims: dict[str, Any]) -> None:
        self.stdout.write("Token exchange in the home tenant")
        home = settings.ENTRA_HOME_TENANT_ID
        app = settings.ENTRA_APP_CLIENT_ID
        exchange = Exchange(home, cloud, app)
        try:
            answer, _ = retry.run(
                lambda: exchange.request(cloud.resources["graph"].scope),
                retry.Policy.from_settings(),
            )
        finally:
            exchange.close()
        if answer.ok:
            self._ok(f"app {app} obtained a token in {home}: the federated credential matches")
            if PlatformAlert.resolve_open():
                self._info("open platform alerts resolved")
            self._staff_recheck(set(unverified_claims(answer.token).get("roles") or []))
            return
        key, outcome = token_failure(answer)
        # The diagnosis of an (unsaved) verification of the home tenant, for its texts.
        verification = Verification(
            tenant=Tenant(
                tenant_id=uuid.UUID(home),
                cloud=cloud.name,
                access_profile=profiles.DEFAULT_PROFILE,
            ),
            outcome=outcome,
            diagnosis=key,
            error_code=answer.error_code,
            platform={"app_client_id": app, "assertion": claims},
        )
        explanation = diagnosis.describe(verification)
        status = f"HTTP {answer.status}" if answer.status else answer.kind
        self._fail(f"{explanation.title} ({answer.error_code or status})")
        self._info(explanation.meaning)
        for line in explanation.remediation:
            self._info(line)
        if not key.startswith("fic_"):
            self._info(
                f"The app {app} in {home} needs a federated identity credential with exactly:"
            )
            self._info(f"Issuer: {claims.get('iss')}")
            self._info(f"Subject: {claims.get('sub')}")
            self._info(f"Audience: {cloud.fic_audience}")
