"""Test settings: the production settings module, fed the demo scenario's identifiers.

Only the environment differs (and a fast password hasher); everything else is what runs in
production, so the suite exercises the real configuration path.
"""

import os

for name, value in {
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdefghijklmnop",
    "ENTRA_CLOUD": "sandbox",
    "ENTRA_HOME_TENANT_ID": "7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17",
    "ENTRA_APP_CLIENT_ID": "c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30",
    "ENTRA_APP_DISPLAY_NAME": "Fabrikam MSSP Portal",
    "ENTRA_MANAGED_IDENTITY_CLIENT_ID": "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2",
    # Placeholder until a test starts the sandbox and points the settings at it.
    "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9",
}.items():
    os.environ.setdefault(name, value)

from mssp_portal.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# beside it are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The verification engine runs tenants on threads, each with its own connection. SQLite's
# in-memory test database shares one cache between connections and locks whole tables
# ("database table is locked") instead of waiting; a file database waits (timeout above).
# One file per test process, so parallel runs do not collide.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"mssp-portal-test-{os.getpid()}.sqlite3")
    }

# Tests never collect static files; with no STATIC_ROOT, WhiteNoise does not look for one
# (the live server serves assets through the staticfiles finders).
STATIC_ROOT = None
