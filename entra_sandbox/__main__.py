"""``python -m entra_sandbox serve --scenario FILE [...]``: run every listener, write
``ca.pem`` and ``sandbox.env`` into the state dir, print the env lines, serve until
SIGINT/SIGTERM. With ``--state-dir`` the directory, signing key and CA outlive a restart."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .directory import ScenarioError
from .server import Sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entra_sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sandbox")
    serve.add_argument("--scenario", required=True, help="scenario TOML (or JSON) file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="https port (0: any free port)")
    serve.add_argument(
        "--login-port",
        type=int,
        help="also serve the browser pages over plain http on this port (0: any free port) "
        "and name it in discovery, for a browser that does not trust ca.pem; by default "
        "they are served on the https authority only, as Entra does",
    )
    serve.add_argument("--identity-port", type=int, default=0, help="http port of managed identity")
    serve.add_argument(
        "--state-dir",
        help="where ca.pem and sandbox.env go (default: a temp dir); given, it also keeps "
        "the directory, signing key and CA across restarts",
    )
    serve.add_argument(
        "--no-persist",
        action="store_true",
        help="keep the directory, signing key and CA in memory even with --state-dir",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sandbox = Sandbox(
            args.scenario,
            state_dir=args.state_dir,
            host=args.host,
            port=args.port,
            login_port=args.login_port,
            identity_port=args.identity_port,
            persist=args.state_dir is not None and not args.no_persist,
        )
    except ScenarioError as exc:
        print(f"entra_sandbox: invalid scenario: {exc}", file=sys.stderr)
        return 2
    for notice in sandbox.notices:
        print(notice, file=sys.stderr, flush=True)
    try:
        sandbox.start()
    except OSError as exc:
        print(f"entra_sandbox: cannot listen: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for name, value in sandbox.env.items():
        print(f"{name}={value}")
    print(f"# state dir: {sandbox.state_dir}", flush=True)
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
