"""Access checks that are more than one permission."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.debug import sensitive_variables

from accounts import graph, roles, users
from accounts.models import ApiToken, StaffIdentity

View = Callable[..., HttpResponse]


@sensitive_variables("header", "value")
def _bearer(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def staff_or_token_required(scope: str) -> Callable[[View], View]:
    """A staff session with `accounts.operate`, or `Authorization: Bearer <token>` of an
    active API token with `scope`. Machines get JSON 401/403, never a sign-in redirect.
    Tokens are accepted in the header only, never in the URL (URLs end up in logs)."""

    def decorator(view: View) -> View:
        @wraps(view)
        @sensitive_variables("value")
        def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            value = _bearer(request)
            if value is not None:
                token = ApiToken.authenticate(value, scope)
                if token is None:
                    return JsonResponse({"error": "invalid_token"}, status=401)
                # The token reads what its owner may: their roles are re-checked as their
                # sessions' are, or the token would outlive a role removed in Entra.
                identity = StaffIdentity.objects.filter(user_id=token.owner_id).first()
                if identity is not None and users.recheck_due(identity):
                    try:
                        users.recheck(identity)
                    except graph.DirectoryUnavailable:
                        return JsonResponse({"error": "owner_roles_unverifiable"}, status=503)
                owner = token.owner
                if owner is not None and not (owner.is_active and owner.has_perm(roles.OPERATE)):
                    # Its creator lost their portal role: the token stops, loudly (an empty
                    # answer would read to a monitor as a fleet without problems).
                    response = JsonResponse({"error": "token_owner_without_role"}, status=401)
                    response["WWW-Authenticate"] = 'Bearer realm="mssp-portal"'
                    return response
                request.api_token = token
                return view(request, *args, **kwargs)
            if request.user.is_authenticated and request.user.has_perm(roles.OPERATE):
                return view(request, *args, **kwargs)
            status = 403 if request.user.is_authenticated else 401
            response = JsonResponse({"error": "authentication_required"}, status=status)
            if status == 401:
                response["WWW-Authenticate"] = 'Bearer realm="mssp-portal"'
            return response

        return wrapped

    return decorator
