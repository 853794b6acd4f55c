"""Real `orgmail` processes for the tests that need a server, a signal or a log of their own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test (never hang it) after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def children(parent: int) -> dict[int, str]:
    """The live child processes of `parent`: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split() if entry.name.isdigit() else []
            if fields and fields[0] != "Z" and int(fields[1]) == parent:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it ended while we looked
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def orgmail(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "orgmail"), *args], env={**os.environ, **env}, capture_output=True, text=True)


class OrgmailServer:
    """`orgmail serve` on a free port, its stderr in a file (a log the test can read as it grows)."""

    def __init__(self, env: dict[str, str], log_path: Path, *, options: tuple[str, ...] = ()):
        self.port = free_port()
        self.options = options  # more of `serve`'s options, e.g. ("--workers", "2")
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, *, timeout: float = 30) -> OrgmailServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "orgmail"), "serve", "--port", str(self.port), *self.options],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # a process group of its own: `stop` kills it whole
            )
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as http:
            while asyncio.get_running_loop().time() < deadline:
                assert self.process.poll() is None, self.log()[-2000:]
                try:
                    if (await http.get(f"{self.base}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"orgmail serve did not start within {timeout:g} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Kill it with its process group and its children (the API workers and the delivery process
        have groups of their own), so that no test leaves a process behind."""
        if self.process is None:
            return
        left = list(children(self.process.pid)) if self.process.poll() is None else []
        with contextlib.suppress(ProcessLookupError):  # also when `serve` itself is gone already
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


async def provision_sender(server: OrgmailServer, *, admin_token: str, domain: str) -> dict[str, str]:
    """An org, its API key and a verified sending domain on a served orgmail; the caller's headers.

    The domain is marked verified with the CLI (no DNS here), as an operator would in development.
    """
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        admin = {"Authorization": f"Bearer {admin_token}"}
        org = (await http.post("/v1/admin/orgs/create", json={"name": domain}, headers=admin)).json()["org"]
        key = (await http.post("/v1/admin/keys/create", json={"orgId": org["id"]}, headers=admin)).json()["key"]
        caller = {"Authorization": f"Bearer {key}"}
        added = (await http.post("/v1/mail/domains/add", json={"name": domain}, headers=caller)).json()["domain"]
    marked = orgmail("domain", "mark-verified", added["id"], "--org", org["id"], env=server.env)
    assert marked.returncode == 0, marked.stderr
    return caller
