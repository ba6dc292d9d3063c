"""The listeners and their lifecycle.

* https (authority): discovery, JWKS, token endpoint, the browser pages (admin consent,
  sign-in, sign-out: Entra serves them on the token endpoint's host), resource probes,
  control API; TLS from a throwaway CA (trustme), because azure-identity refuses a
  non-https authority. The server sends the CA in its chain, so a browser can be told to
  trust the CA's key (see testing.browser_trust_args);
* plain http managed identity listener (App Service and IMDS shapes), as on a real host;
* only when asked for (``login_port``): a plain http copy of the browser pages, named in
  discovery instead of the authority, for a person's own browser that does not trust
  ``ca.pem`` (``make demo``). A modelling choice, not what Entra does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import control, identity, login, resources, sts
from .control import ControlClient
from .directory import load_directory, read_scenario
from .persistence import CA_FILE, StateDir, write_atomically
from .routing import KEEP_ALIVE, Listener
from .state import SandboxState

logger = logging.getLogger("entra_sandbox")


class _ResponseSentInput:
    """The connection's read side, as werkzeug's handler sees it. After a keep-alive
    response it reads as empty: werkzeug's post-response "discard leftovers" loop would
    otherwise swallow the client's next request."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self.response_sent = False

    def read(self, *args: Any) -> bytes:
        return b"" if self.response_sent else self._rfile.read(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without per-request log lines (benchmarks make thousands), and
    with HTTP/1.1 keep-alive.

    Werkzeug closes every connection because http.server cannot skip an unread request
    body. `Listener` reads the body to its end and marks the request (KEEP_ALIVE); then the
    connection stays open. Without it every https request paid a full TLS handshake, which
    made the sandbox, not the latency under test, the bottleneck of fleet benchmarks.
    """

    # Idle keep-alive connections (and clients that never finish the TLS handshake) are
    # dropped after this many seconds.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; on a kept-alive connection Nagle's
        # algorithm would hold the body until the client's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = _ResponseSentInput(self.rfile)

    def handle_one_request(self) -> None:
        self.rfile.response_sent = False
        super().handle_one_request()

    def send_header(self, keyword: str, value: str) -> None:
        if (
            keyword.lower() == "connection"
            and value.lower() == "close"
            and getattr(self, "environ", {}).get(KEEP_ALIVE)
        ):
            self.rfile.response_sent = True
            return
        super().send_header(keyword, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's name
        if type == "error":
            logger.debug(message, *args)


_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - recognised, not bound


_SHARED_CA: trustme.CA | None = None
_SHARED_CA_LOCK = threading.Lock()


def shared_ca() -> trustme.CA:
    """The throwaway CA of every sandbox this process runs without a state dir. One per
    process, so a browser launched once (tests) can trust every such sandbox by one key."""
    global _SHARED_CA
    with _SHARED_CA_LOCK:
        if _SHARED_CA is None:
            _SHARED_CA = trustme.CA()
        return _SHARED_CA


def _tls_context(ca: trustme.CA, leaf: trustme.LeafCert, directory: Path) -> ssl.SSLContext:
    """Server TLS with the chain leaf + CA. Sending the self-signed root is allowed and
    harmless for clients that trust it; it lets Chromium match the CA's key against
    ``--ignore-certificate-errors-spki-list`` (it only looks at the chain it is sent)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    chain = leaf.private_key_pem.bytes() + b"".join(b.bytes() for b in leaf.cert_chain_pems)
    # ssl loads a chain only from a file; a private one, removed at once.
    fd, path = tempfile.mkstemp(dir=directory, prefix=".tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(chain + ca.cert_pem.bytes())
        tls.load_cert_chain(path)
    finally:
        Path(path).unlink(missing_ok=True)
    return tls


def _url_host(host: str) -> str:
    # Clients need a concrete loopback address even when the sandbox binds every interface.
    if host in _ANY_ADDRESS:
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class Sandbox:
    """The sandbox running on threads of this process. Use as a context manager, or
    ``start()`` / ``stop()``."""

    def __init__(
        self,
        scenario: str | Path | Mapping[str, Any],
        state_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        login_port: int | None = None,
        identity_port: int = 0,
        persist: bool = False,
    ) -> None:
        """`persist`: keep the directory, signing key and CA in `state_dir` and start from
        them (see persistence.py); otherwise they live in memory only. Without a
        `state_dir` a temp dir is made for ``ca.pem`` and ``sandbox.env`` and removed at
        stop. `login_port` (0: any free port) adds the plain-http browser pages."""
        data = read_scenario(scenario)
        # Built even when a saved directory is restored: it validates the scenario.
        directory = load_directory(data)
        self._own_state_dir = not state_dir
        self.state_dir = (
            Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="entra-sandbox-"))
        )
        self._saved = StateDir(self.state_dir) if persist else None
        if self._saved is None:
            self.state = SandboxState(directory, scenario=data)
        else:
            directory = self._saved.open_directory(directory, data)
            self.state = SandboxState(directory, scenario=data, key=self._saved.signing_key())
        self.host = host
        self._ports = (port, login_port, identity_port)
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Sandbox:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url_host = _url_host(self.host)
        ca = shared_ca() if self._saved is None else self._saved.ca()
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1", *({self.host} - _ANY_ADDRESS))
        self.ca_path = str(self.state_dir / CA_FILE)
        write_atomically(Path(self.ca_path), ca.cert_pem.bytes())
        tls = _tls_context(ca, cert, self.state_dir)

        port, login_port, identity_port = self._ports
        state = self.state
        https = self._serve(
            port,
            Listener(
                state,
                [*sts.routes(), *login.routes(), *resources.routes(), *control.routes()],
            ),
            tls,
        )
        http_identity = self._serve(identity_port, Listener(state, identity.routes()))
        state.authority = f"https://{url_host}:{https.server_port}"
        state.login_url = state.authority
        if login_port is not None:
            http_login = self._serve(login_port, Listener(state, login.routes()))
            state.login_url = f"http://{url_host}:{http_login.server_port}"
        state.identity_url = f"http://{url_host}:{http_identity.server_port}"

        self.env = state.env(self.ca_path)
        # Written atomically: scripts poll for the file and source it as soon as it exists.
        partial = self.state_dir / "sandbox.env.partial"
        partial.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()), encoding="utf-8")
        partial.replace(self.state_dir / "sandbox.env")
        self.control = ControlClient(self.env["SANDBOX_CONTROL_URL"], self.ca_path)
        return self

    def _serve(self, port: int, app: Listener, tls: ssl.SSLContext | None = None) -> BaseWSGIServer:
        server = make_server(
            self.host, port, app, threaded=True, request_handler=QuietRequestHandler
        )
        if tls is not None:
            # Werkzeug would handshake inside accept(), on the one serving thread, so a
            # client that connects and stalls would block every other client. Deferred,
            # the handshake runs on the request's own thread.
            server.socket = tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
            server.ssl_context = tls
        thread = threading.Thread(
            target=server.serve_forever, name=f"entra-sandbox:{server.server_port}", daemon=True
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        return server

    def stop(self) -> None:
        # Release hanging requests first, or their threads would hold sockets open.
        self.state.faults.release_all()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._own_state_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.state_dir)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the contract's attributes -------------------------------------------------------

    @property
    def notices(self) -> list[str]:
        """Lines about the state dir worth showing (a saved directory discarded, and why)."""
        return [] if self._saved is None else list(self._saved.notices)

    @property
    def authority(self) -> str:
        return self.state.authority

    @property
    def login_url(self) -> str:
        return self.state.login_url

    @property
    def identity_endpoint(self) -> str:
        return self.state.identity_endpoint

    @property
    def identity_header(self) -> str:
        return self.state.identity_header

    @property
    def imds_url(self) -> str:
        return self.state.identity_url

    @property
    def resource_urls(self) -> dict[str, str]:
        return self.state.resource_urls
