"""Staff sign-in (Entra, and the local break-glass form), sign-out, API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from accounts import entra, roles, second_factor, throttle
from accounts.forms import ApiTokenForm, BreakGlassForm
from accounts.middleware import start_session
from accounts.models import ApiToken
from accounts.users import staff_user_for, with_groups, withdraw_roles
from audit.log import actor_of, record
from mssp_portal import clouds
from mssp_portal.ratelimits import limit_per_address
from notifications.events import emit
from notifications.models import BREAK_GLASS_USED

FLOW_KEY = "accounts.entra_flow"
NEXT_KEY = "accounts.next"

# What the refusal page says for each reason; the reason codes are ours, never Entra's text.
REFUSALS = {
    "no_role": "Your account has no role in the portal. Ask a portal administrator to assign "
    "you the Portal.Operator or Portal.Admin role on the portal's enterprise application.",
    "wrong_tenant": "The portal is only for staff of {mssp}. Accounts of other organisations, "
    "including customers' administrators, cannot sign in here.",
    "state_mismatch": "This sign-in response does not belong to a sign-in started in this "
    "browser, or it was already used. Start again from the sign-in page.",
    "no_flow": "This sign-in response does not belong to a sign-in started in this browser, "
    "or it was already used. Start again from the sign-in page.",
    "bad_request": "The sign-in response was malformed. Start again from the sign-in page.",
    "account_conflict": "A local account already uses this name. Ask a portal administrator.",
    "account_disabled": "Your portal account is disabled. Ask a portal administrator.",
    "incomplete_claims": "Microsoft Entra did not say who you are. Start again from the "
    "sign-in page.",
    "groups_unavailable": "You are in more groups than Microsoft Entra puts in a sign-in, and "
    "the portal could not read them from Microsoft Graph, so it cannot tell which tenants "
    "you may see. Try again in a few minutes; if this keeps happening, ask a portal "
    "administrator to check the portal's Graph permissions (README, Staff access).",
}
DEFAULT_REFUSAL = "Microsoft Entra did not complete the sign-in. Start again from the sign-in page."


def _safe_next(request: HttpRequest, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return reverse(settings.LOGIN_REDIRECT_URL)


@require_GET
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    """The sign-in page: "Sign in with Microsoft", and a link to the break-glass form."""
    response = render(
        request,
        "accounts/login.html",
        {"next": _safe_next(request, request.GET.get("next"))},
    )
    # The form posts here and is redirected on to Entra's sign-in host; browsers apply
    # form-action to the redirect, so that host must be allowed on this page.
    response._csp_update = {"form-action": [clouds.current().login_url]}
    return response


@require_POST
@csrf_protect
@never_cache
@limit_per_address("accounts.sign_in", "RATELIMIT_SIGN_IN")
def start(request: HttpRequest) -> HttpResponse:
    try:
        flow = entra.start()
    except entra.SignInUnavailable:
        return render(request, "accounts/unavailable.html", status=503)
    request.session[FLOW_KEY] = flow
    request.session[NEXT_KEY] = _safe_next(request, request.POST.get("next"))
    return HttpResponseRedirect(flow["auth_uri"])


@sensitive_variables("flow")  # the PKCE verifier and nonce
@require_GET
@never_cache
@limit_per_address("accounts.sign_in", "RATELIMIT_SIGN_IN")
def callback(request: HttpRequest) -> HttpResponse:
    """Entra sends the browser back here with `code` and `state` (or `error`)."""
    # The flow is single use: taken out of the session before anything else happens.
    flow = request.session.pop(FLOW_KEY, None)
    next_url = request.session.pop(NEXT_KEY, None)
    if any(len(values) > 1 for _key, values in request.GET.lists()):
        return _refuse(request, "bad_request", status=400)
    if not flow:
        return _refuse(request, "no_flow", status=400)
    try:
        claims = with_groups(entra.finish(flow, request.GET.dict()))
        user = staff_user_for(claims)
    except entra.SignInRefused as refused:
        if refused.reason == "no_role" and refused.object_id:
            withdraw_roles(refused.object_id)
        return _refuse(request, refused.reason, upn=refused.upn, tenant_id=refused.tenant_id)
    except entra.SignInUnavailable:
        return render(request, "accounts/unavailable.html", status=503)
    # login() rotates the session key (no fixation) and keeps nothing of the flow.
    auth_login(request, user, backend="accounts.backends.ThrottledModelBackend")
    start_session(request)
    record(
        "user.signed_in",
        "success",
        actor=claims.username,
        detail={"method": "entra", "roles": ",".join(claims.roles)},
    )
    return redirect(_safe_next(request, next_url))


def _refuse(
    request: HttpRequest, reason: str, *, upn: str = "", tenant_id: str = "", status: int = 403
) -> HttpResponse:
    record(
        "user.sign_in_refused",
        "denied",
        actor=upn or "anonymous",
        detail={"method": "entra", "reason": reason, "tid": tenant_id or "-"},
    )
    message = REFUSALS.get(reason, DEFAULT_REFUSAL).format(mssp=settings.MSSP_NAME)
    return render(
        request,
        "accounts/refused.html",
        {"message": message, "reason": reason},
        status=status,
    )


@sensitive_post_parameters("password", "otp_token")
@require_http_methods(["GET", "POST"])
@csrf_protect
@never_cache
@limit_per_address("accounts.sign_in", "RATELIMIT_SIGN_IN")
def break_glass(request: HttpRequest) -> HttpResponse:
    """Local password sign-in with a second factor, for bootstrap and emergencies (Entra
    down or misconfigured). Throttled (accounts.throttle) and audited: every use is a
    `staff.break_glass_used` event."""
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    form = BreakGlassForm(request, data=request.POST or None)
    status = 200
    if request.method == "POST":
        username = request.POST.get("username", "")
        if form.is_valid():
            user = form.get_user()
            auth_login(request, user)
            otp_login(request, form.otp_device)
            start_session(request)
            throttle.clear(username)
            factor = second_factor.describe(form.otp_device)
            record("user.signed_in", "success", actor=actor_of(request), detail={"method": "local"})
            ip = throttle.client_ip(request) or "-"
            with transaction.atomic():
                record(
                    BREAK_GLASS_USED,
                    "success",
                    actor=actor_of(request),
                    detail={**factor, "ip": ip},
                )
                emit(
                    BREAK_GLASS_USED,
                    {
                        "user": actor_of(request),
                        "second_factor": factor["second_factor"],
                        "second_factor_words": "a recovery code"
                        if factor["second_factor"] == "recovery_code"
                        else "an authenticator code",
                        "ip": ip,
                        "url": settings.PORTAL_BASE_URL + reverse("console:audit_log"),
                    },
                )
            return redirect(next_url)
        if form.second_factor_refusal:
            # The password was right: the failure counts against the account all the same.
            ip = throttle.client_ip(request)
            throttle.record_failure(username, ip)
            record(
                "user.sign_in_refused",
                "denied",
                actor=throttle.normalise(username),
                detail={"method": "local", "reason": form.second_factor_refusal, "ip": ip or "-"},
            )
        if throttle.is_locked(username, throttle.client_ip(request)):
            # Say only that: not whether the password was right (it was not even checked).
            form.errors.clear()
            form.add_error(None, "Too many failed attempts. Try again later.")
            status = 429
        else:
            status = 400
    return render(
        request, "accounts/break_glass.html", {"form": form, "next": next_url}, status=status
    )


@require_POST
@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    """Sign out: the server-side session is deleted, not just forgotten by the browser."""
    if request.user.is_authenticated:
        record("user.signed_out", "success", actor=actor_of(request))
    auth_logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


def _tokens_for_user(request: HttpRequest) -> object:
    """Admins see and revoke every token; operators their own, which read only what they
    may read (their tenant scope)."""
    if request.user.has_perm(roles.ADMINISTER):
        return ApiToken.objects.all()
    return ApiToken.objects.filter(owner=request.user)


@require_GET
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def tokens(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {"tokens": _tokens_for_user(request)[:200], "form": ApiTokenForm()},
    )


@require_POST
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "accounts/tokens.html",
            {"tokens": _tokens_for_user(request)[:200], "form": form},
            status=400,
        )
    token, value = ApiToken.issue(
        name=form.cleaned_data["name"],
        scope=form.cleaned_data["scope"],
        created_by=actor_of(request),
        expires_at=form.expires_at(),
        owner=request.user,
    )
    record(
        "api_token.created",
        "success",
        actor=actor_of(request),
        detail={"token": str(token.code), "name": token.name, "scope": token.scope},
    )
    # Shown in this response only: not in a redirect, a message or the session.
    return render(request, "accounts/token_created.html", {"token": token, "value": value})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(roles.OPERATE, raise_exception=True)
def token_revoke(request: HttpRequest, token_code: str) -> HttpResponse:
    """GET asks for confirmation; POST revokes."""
    token = get_object_or_404(_tokens_for_user(request), code=token_code)
    if request.method == "GET":
        return render(request, "accounts/token_revoke.html", {"token": token})
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(
            "api_token.revoked",
            "success",
            actor=actor_of(request),
            detail={"token": str(token.code), "name": token.name},
        )
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("accounts:tokens")
