"""manage.py doctor

Checks the MSSP's own side before any customer is onboarded: the settings, the managed
identity (reachable, and the claims of its token), and a token exchange in the home tenant,
which proves the federated identity credential. When the exchange fails it prints exactly
which federated credential values must exist, and reads the name Entra shows customers for
the app. It ends with one summary line; exit code 1 when anything fails.
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import OuterRef, Subquery
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_variables

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
        self._least_privilege()
        self.stdout.write(self.style.SUCCESS("doctor: the home side is ready."))

    # -- output ----------------------------------------------------------------------------

    def _ok(self, text: str) -> None:
        self.stdout.write(f"  ok    {text}")

    def _fail(self, text: str) -> None:
        self.failures += 1
        self.stdout.write(self.style.ERROR(f"  FAIL  {text}"))

    def _warn(self, text: str) -> None:
        self.stdout.write(self.style.WARNING(f"  WARN  {text}"))

    def _info(self, text: str) -> None:
        self.stdout.write(f"        {text}")

    def _give_up(self) -> None:
        count = ngettext(
            "doctor: %(n)d problem found on the home side; fix it and run doctor again.",
            "doctor: %(n)d problems found on the home side; fix them and run doctor again.",
            self.failures,
        ) % {"n": self.failures}
        self.stdout.write(self.style.ERROR(count))
        sys.exit(1)

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

    @sensitive_variables("token")
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

    @sensitive_variables("answer")
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
            self._display_name(cloud, app, answer.token)
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

    @sensitive_variables("token")
    def _display_name(self, cloud: clouds.Cloud, app: str, token: str) -> None:
        """The app's name as Entra shows it (its service principal in the home tenant, which
        an app may read about itself), against ENTRA_APP_DISPLAY_NAME: customer pages tell
        customers to look for that name."""
        self.stdout.write("The app's name in Entra")
        url = f"{cloud.resources['graph'].base_url}/v1.0/servicePrincipals(appId='{app}')"
        try:
            response = identity.http_session().get(
                url,
                params={"$select": "displayName"},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=settings.VERIFY_HTTP_TIMEOUT,
            )
            shown = str(response.json().get("displayName") or "") if response.ok else ""
        except (requests.RequestException, ValueError):
            shown = ""
        configured = settings.ENTRA_APP_DISPLAY_NAME
        if not shown:
            self._info(
                f"could not read the app's display name (Graph servicePrincipals, app {app}); "
                f"ENTRA_APP_DISPLAY_NAME = {configured!r} is not checked"
            )
        elif configured == shown:
            self._ok(f"ENTRA_APP_DISPLAY_NAME = {configured!r}, the name Entra shows customers")
        elif not configured:
            self._fail(
                f"ENTRA_APP_DISPLAY_NAME is not set: set it to {shown!r}, the name Entra shows "
                "customers, so the customer pages can tell them what to look for"
            )
        else:
            self._fail(
                f"ENTRA_APP_DISPLAY_NAME = {configured!r}, but Entra shows customers {shown!r}: "
                "set it to the app's display name"
            )

    def _least_privilege(self) -> None:
        """Warn (not fail) about roles customers' tokens carry that no access profile
        requires, from each onboarded tenant's latest finished verification."""
        self.stdout.write("Least privilege")
        latest = (
            Verification.objects.filter(tenant=OuterRef("pk"), state=Verification.State.DONE)
            .order_by("-finished_at")
            .values("pk")[:1]
        )
        ids = (
            Tenant.objects.filter(offboarded_at__isnull=True)
            .annotate(latest=Subquery(latest))
            .values_list("latest", flat=True)
        )
        tenants: Counter[tuple[str, str]] = Counter()
        for results in Verification.objects.filter(pk__in=[i for i in ids if i]).values_list(
            "results", flat=True
        ):
            for resource, extra in profiles.unneeded_roles(results).items():
                tenants.update((resource, role) for role in extra)
        if not tenants:
            self._ok("customer tokens carry only permissions an access profile requires")
            return
        for (resource, role), count in sorted(tenants.items()):
            title = clouds.TITLES.get(resource, resource)
            where = ngettext("%d tenant", "%d tenants", count) % count
            self._warn(f"{title} {role} is in the tokens of {where}; no access profile uses it")
        self._info(
            "Remove these from the API permissions of the app registration "
            f"{settings.ENTRA_APP_CLIENT_ID}, so customers are asked only for what you use. "
            "Tenants that already consented keep them until their administrator removes them "
            "from the app's enterprise application."
        )
