"""MSSP Portal settings: one module, configured from the environment (see .env.example).

Defaults make `manage.py runserver` work on SQLite with no setup; production is configured
by environment variables only, and the system checks in `mssp_portal.checks` refuse to start
a deployment whose Entra configuration is missing or malformed.
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development-only key: the mssp_portal.E001 check refuses it when DEBUG is off.
DEV_SECRET_KEY = "dev-insecure-only-for-local-runserver"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# The portal's public origin. Redirect URIs registered on the app are built from it, never
# from the request's Host header.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://localhost:8000").rstrip("/")
# Production serves over https only; this switches on HSTS, secure cookies and the redirect.
PORTAL_HTTPS = env.bool("PORTAL_HTTPS", default=PORTAL_BASE_URL.startswith("https://"))
MSSP_NAME = env.str("MSSP_NAME", default="Fabrikam Security")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "django_ratelimit",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "mssp_portal",
    "audit",
    "accounts",
    "notifications",
    "tenants",
    "consent",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionTimeoutMiddleware",
    "accounts.middleware.RoleRecheckMiddleware",
    "accounts.middleware.AdminSiteGateMiddleware",
    "accounts.probing.AccessDeniedAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "mssp_portal.urls"
WSGI_APPLICATION = "mssp_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mssp_portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue up instead of failing with "database is locked" mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
# Seconds a web process keeps its database connection between requests (0: a new one per
# request). On PostgreSQL every new connection is a new server process: CONN_MAX_AGE=60
# doubled the consent callbacks a second in bench/consent_burst.py. A kept connection is
# checked before each request's first query, so a database restart costs no error page.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Entra -------------------------------------------------------------------------------
# Which cloud the portal talks to: public, usgov, china or sandbox (see mssp_portal/clouds.py).
ENTRA_CLOUD = env.str("ENTRA_CLOUD", default="public")
ENTRA_HOME_TENANT_ID = env.str("ENTRA_HOME_TENANT_ID", default="")
ENTRA_APP_CLIENT_ID = env.str("ENTRA_APP_CLIENT_ID", default="")
# The app registration's display name: what Entra shows customers on its consent page and in
# Enterprise applications. `manage.py doctor` reads the real one and compares.
ENTRA_APP_DISPLAY_NAME = env.str("ENTRA_APP_DISPLAY_NAME", default="")
ENTRA_MANAGED_IDENTITY_CLIENT_ID = env.str("ENTRA_MANAGED_IDENTITY_CLIENT_ID", default="")
# Kubernetes workload identity: read the assertion from this projected token file instead of
# asking a managed-identity endpoint.
ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE = env.str("ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE", default="")
# Extra CA bundle for TLS to Entra and the resource APIs (the sandbox's throwaway CA).
ENTRA_CA_BUNDLE = env.str("ENTRA_CA_BUNDLE", default="")
# The sandbox cloud reads the very variables `python -m entra_sandbox serve` prints.
SANDBOX = {
    "authority": env.str("AZURE_AUTHORITY_HOST", default=""),
    "login": env.str("SANDBOX_LOGIN_URL", default=""),
    "graph": env.str("SANDBOX_GRAPH_URL", default=""),
    "defender": env.str("SANDBOX_DEFENDER_URL", default=""),
    "mde": env.str("SANDBOX_MDE_URL", default=""),
    "arm": env.str("SANDBOX_ARM_URL", default=""),
    "loganalytics": env.str("SANDBOX_LOGANALYTICS_URL", default=""),
}

# --- Consent -----------------------------------------------------------------------------
# How long one "Grant admin consent" click stays redeemable (the `state` ticket).
CONSENT_STATE_TTL = env.int("CONSENT_STATE_TTL", default=3600)
INVITATION_DEFAULT_DAYS = env.int("INVITATION_DEFAULT_DAYS", default=14)
# Domain lookups running at once while a CSV import is previewed (each is one HTTPS request
# to Entra's discovery endpoint).
IMPORT_LOOKUP_WORKERS = env.int("IMPORT_LOOKUP_WORKERS", default=16)

# --- Verification ------------------------------------------------------------------------
VERIFY_INTERVAL = env.int("VERIFY_INTERVAL", default=6 * 3600)
VERIFY_CONCURRENCY = env.int("VERIFY_CONCURRENCY", default=16)
VERIFY_LEASE = env.int("VERIFY_LEASE", default=300)
VERIFY_HTTP_TIMEOUT = env.float("VERIFY_HTTP_TIMEOUT", default=10.0)
# Transient answers (429, 5xx, time-outs): retries per call, the first backoff (doubled each
# time unless Retry-After says otherwise), and the longest wait done in line; beyond it the
# tenant is marked stale and re-checked after VERIFY_STALE_INTERVAL.
VERIFY_RETRIES = env.int("VERIFY_RETRIES", default=3)
VERIFY_RETRY_BASE_DELAY = env.float("VERIFY_RETRY_BASE_DELAY", default=1.0)
VERIFY_RETRY_MAX_DELAY = env.float("VERIFY_RETRY_MAX_DELAY", default=30.0)
# Right after admin consent Entra can answer "app not found" (AADSTS700016, 65001, 7000229)
# for a while: within this many seconds of a recorded consent, a verification waits and
# asks again instead of reporting "no access".
CONSENT_PROPAGATION_GRACE = env.int("CONSENT_PROPAGATION_GRACE", default=180)
VERIFY_STALE_INTERVAL = env.int("VERIFY_STALE_INTERVAL", default=900)
# `manage.py run_scheduler`: seconds between ticks; verifications per worker task.
VERIFY_SCHEDULER_TICK = env.int("VERIFY_SCHEDULER_TICK", default=60)
VERIFY_BATCH_SIZE = env.int("VERIFY_BATCH_SIZE", default=200)
# For this many seconds from its start, a worker's batch whose threads run out of their own
# verifications takes queued ones of other batches while any of its threads is still busy;
# after that it lets its task end, so the worker's other tasks (notifications) get a turn.
VERIFY_HELP_SECONDS = env.int("VERIFY_HELP_SECONDS", default=60)

TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

# --- Notifications -----------------------------------------------------------------------
# Email transport, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ's
# email_url); the default prints messages to the console, which is for development only.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
NOTIFY_FROM_EMAIL = env.str("NOTIFY_FROM_EMAIL", default="mssp-portal@localhost")
DEFAULT_FROM_EMAIL = NOTIFY_FROM_EMAIL
SERVER_EMAIL = NOTIFY_FROM_EMAIL
# Destination URLs must be https and resolve to public addresses; True lifts both rules
# (development and tests only: the portal runs next to a managed-identity endpoint).
NOTIFY_ALLOW_INSECURE_URLS = env.bool("NOTIFY_ALLOW_INSECURE_URLS", default=False)
NOTIFY_HTTP_TIMEOUT = env.float("NOTIFY_HTTP_TIMEOUT", default=5.0)
NOTIFY_CA_BUNDLE = env.str("NOTIFY_CA_BUNDLE", default="")
# Retries on 5xx, 408, 429, time-outs and connection errors: first after this many seconds,
# doubling, for NOTIFY_RETRY_FOR seconds after the event.
NOTIFY_RETRY_BASE_DELAY = env.float("NOTIFY_RETRY_BASE_DELAY", default=30)
NOTIFY_RETRY_FOR = env.int("NOTIFY_RETRY_FOR", default=86400)
# A tenant whose status changes 3 times within this many seconds is flapping: further
# changes in the window are told once, in a summary at its end.
NOTIFY_FLAP_WINDOW = env.int("NOTIFY_FLAP_WINDOW", default=1800)

# --- Shared cache and rate limits --------------------------------------------------------
# One store for every gunicorn worker and host: a table in the database (created by
# `migrate`), with an atomic increment (mssp_portal/cache.py).
CACHES = {
    "default": {
        "BACKEND": "mssp_portal.cache.AtomicDatabaseCache",
        "LOCATION": "mssp_portal_cache",
        # Counters are small and short-lived; expired rows are culled past this many.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}
# How many proxies in front of the portal append to X-Forwarded-For. 0: the header is
# ignored and the peer address is the client. N: the address the Nth proxy from here
# appended (the rightmost entry for one proxy); entries further left are the client's own
# writing and never used.
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)
# Requests per address (django-ratelimit rates: "30/m", "20/h"): to the customer's consent
# pages (the invitation page and its button, and separately the callback), to staff
# sign-in (start, callback and break-glass together), and how many consents one address
# may start. Over the limit: 429 and nothing read or written.
RATELIMIT_CONSENT = env.str("RATELIMIT_CONSENT", default="30/m")
RATELIMIT_SIGN_IN = env.str("RATELIMIT_SIGN_IN", default="30/m")
RATELIMIT_CONSENT_STARTS = env.str("RATELIMIT_CONSENT_STARTS", default="20/h")
# Unused, unexpired consent tickets one invitation may hold ("Grant admin consent" pressed
# without finishing): beyond it the button answers 429 until the earliest one expires.
CONSENT_OPEN_TICKETS_LIMIT = env.int("CONSENT_OPEN_TICKETS_LIMIT", default=20)
# django-ratelimit warns about any cache but memcached and Redis. Its objection to
# Django's database cache (django_ratelimit.E003: no atomic increment) is what
# AtomicDatabaseCache answers, and tests/test_rate_limits.py holds it to that.
# `access.denied` audit events (403 and 404 answered to signed-in staff) per actor;
# past the rate one event says the rest are not recorded until the window ends.
ACCESS_DENIED_AUDIT_RATE = env.str("ACCESS_DENIED_AUDIT_RATE", default="30/h")
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

# --- Sessions, cookies and security headers ----------------------------------------------
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = env.int("SESSION_ABSOLUTE_TIMEOUT", default=8 * 3600)
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = [PORTAL_BASE_URL]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "console:dashboard"
# Password sign-in (break-glass accounts) goes through the throttled backend.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
# Break-glass accounts also need a second factor (accounts.second_factor); the name an
# authenticator app shows for it:
OTP_TOTP_ISSUER = f"{MSSP_NAME} portal"
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)  # per username per window
LOGIN_FAILURE_IP_LIMIT = env.int("LOGIN_FAILURE_IP_LIMIT", default=20)  # per address
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=15 * 60)
# Staff access: how often a signed-in Entra user's app roles and groups are read again from
# Graph (seconds; the session ends when they cannot be), and what an operator whom no
# tenant group maps sees: "auto" (every tenant until some group is mapped, then none),
# "all" or "none" (console/access.py).
STAFF_ROLE_RECHECK = env.int("STAFF_ROLE_RECHECK", default=900)
STAFF_UNMAPPED_SCOPE = env.str("STAFF_UNMAPPED_SCOPE", default="auto")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PORTAL_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # __Host- cookies: Secure, no Domain, path / — not settable by a sibling subdomain.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        # Pages whose form is redirected on to Entra's sign-in host ("Grant admin consent",
        # staff sign-in) add that host per response: browsers apply form-action to redirects.
        "form-action": [SELF],
    }
}

# Error reports (the ADMINS mail, the DEBUG page) with anything shaped like a token removed.
DEFAULT_EXCEPTION_REPORTER = "mssp_portal.reporting.TokenSafeExceptionReporter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # azure-core logs request URLs and headers at INFO; the portal logs its own outcomes.
        "azure": {"level": "WARNING"},
        # azure-identity warns on every failed token request with Entra's raw
        # error_description, which names the customer's directory (customer-controlled text,
        # multi-line). The verification engine records each failure itself, classified.
        "azure.identity": {"level": "ERROR"},
        "msal": {"level": "WARNING"},
        # At DEBUG it logs every failed variable lookup with the whole template context:
        # for an error report, every frame's variables, before any redaction.
        "django.template": {"level": "INFO"},
    },
}
