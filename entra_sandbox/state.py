"""Everything the endpoints share: directory, keys, clock, faults, counters and URLs."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from .catalog import RESOURCES
from .directory import Directory, load_directory
from .faults import Counters, Faults
from .keys import SigningKey
from .tokens import Clock, TokenIssuer


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    tenant_id: str
    user_upn: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: int
    redeemed: bool = False
    issued_at: int = 0  # the sign-in's time (STS clock): the refresh grant's auth time


@dataclass
class RefreshGrant:
    """What a refresh token stands for. Entra's are opaque; so are the sandbox's."""

    client_id: str
    tenant_id: str
    user_object_id: str
    scope: str
    auth_time: int  # the sign-in the grant descends from (STS clock)
    expires_at: int  # inactivity expiry; each use issues a new token with a new one


@dataclass
class SandboxState:
    directory: Directory
    # The scenario as loaded, so `reset` can rebuild the initial directory.
    scenario: dict[str, Any] = field(default_factory=dict)
    # Filled in once the listeners are bound (ports may be chosen by the OS).
    authority: str = ""
    login_url: str = ""
    identity_url: str = ""
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    key: SigningKey = field(default_factory=SigningKey)
    clock: Clock = field(default_factory=Clock)
    faults: Faults = field(default_factory=Faults)
    counters: Counters = field(default_factory=Counters)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    codes_lock: threading.Lock = field(default_factory=threading.Lock)
    # Refresh tokens, like codes, live in memory only (under codes_lock).
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    tokens: TokenIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenIssuer(self.key, self.clock, lambda: self.authority)

    @property
    def resource_urls(self) -> dict[str, str]:
        return {key: f"{self.authority}/resources/{key}" for key in RESOURCES}

    @property
    def identity_endpoint(self) -> str:
        return f"{self.identity_url}/msi/token"

    def env(self, ca_path: str) -> dict[str, str]:
        """The NAME=value lines a client needs, by the names the Microsoft clients read."""
        urls = self.resource_urls
        return {
            "AZURE_AUTHORITY_HOST": self.authority,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": self.identity_url,
            "REQUESTS_CA_BUNDLE": ca_path,
            "SANDBOX_LOGIN_URL": self.login_url,
            "SANDBOX_CONTROL_URL": f"{self.authority}/_sandbox",
            "SANDBOX_GRAPH_URL": urls["graph"],
            "SANDBOX_DEFENDER_URL": urls["defender"],
            "SANDBOX_MDE_URL": urls["mde"],
            "SANDBOX_ARM_URL": urls["arm"],
            "SANDBOX_LOGANALYTICS_URL": urls["loganalytics"],
        }

    def reset(self) -> None:
        """Back to the scenario's initial directory, no faults, no clock skew, no pending
        authorization codes or refresh tokens. Counters and the issued-token log are kept.
        The directory is replaced in place, so its change hook saves the reset directory
        too."""
        self.directory.replace(load_directory(self.scenario))
        self.faults.clear()
        self.clock.skew_seconds = 0
        with self.codes_lock:
            self.codes.clear()
            self.refresh_tokens.clear()

    def setting(self, name: str) -> int:
        return self.directory.settings[name]

    def describe(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "login_url": self.login_url,
            "identity_url": self.identity_url,
            "clock_skew_seconds": self.clock.skew_seconds,
        }
