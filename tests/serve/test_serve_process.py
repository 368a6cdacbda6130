"""`mixhic serve` / `mixhic prepare` as processes: every socket of the Serve app and its
local Ray is on loopback, slow clients are cut, and SIGTERM/SIGINT end the command
cleanly (one line, exit 128 + signal, no stack dump) leaving no process of its Ray
session behind. Each test starts its own Ray in a subprocess (own RAY_TMPDIR)."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from netutil import free_port
from serve_helpers import cached_genome, make_model_dir

pytestmark = pytest.mark.integration


def _psutil():
    import ray  # noqa: F401 - ray puts its vendored psutil on sys.path

    import psutil

    return psutil


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_SERVE_", "RAY_ADDRESS", "RAY_API_SERVER"))}
    env.update(HOME=str(root), RAY_TMPDIR=str(root / "r"), TQDM_DISABLE="1")
    return env


class _Run:
    """A ``python -m mixhic.platform.cli ARGS`` subprocess and the processes of its Ray."""

    def __init__(self, args: list[str], root: Path) -> None:
        self.root, self.log = root, root / "out.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mixhic.platform.cli", *args], env=_env(root),
                cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: set[int] = set()

    def session(self) -> list:
        """Live processes of this run: descendants of the driver (remembered across
        calls: re-parented ones too) and anything naming the run's temp dir."""
        psutil = _psutil()
        try:
            self.seen |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        out = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            if p.pid == self.proc.pid:
                continue
            if p.pid in self.seen or str(self.root) in " ".join(p.info["cmdline"] or ()):
                try:
                    if p.status() != psutil.STATUS_ZOMBIE:
                        out.append(p)
                except psutil.NoSuchProcess:
                    pass
        return out

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, what, timeout: float, step: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.session()
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            got = what()
            if got:
                return got
            time.sleep(step)
        raise AssertionError(f"not ready in {timeout} s:\n{self.output()[-3000:]}")

    def stop(self, sig: int, timeout: float = 90) -> tuple[int, float]:
        """Send ``sig``; (exit status, seconds to exit)."""
        self.session()
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - t0

    def kill_left(self) -> list[str]:
        """Processes of the run still alive (waited for up to 10 s), killed by pid."""
        deadline = time.monotonic() + 10
        left = self.session()
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = self.session()
        names = []
        for p in left:
            try:
                names.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                p.kill()
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        return names


def _non_loopback(processes) -> list[str]:
    """Listening TCP sockets and bound UDP sockets of ``processes`` not on loopback."""
    psutil = _psutil()
    bad = []
    for p in processes:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
                continue
            if c.type == socket.SOCK_DGRAM and c.raddr:
                continue  # a connected UDP socket: bound to the peer's route
            ip = c.laddr.ip.removeprefix("::ffff:")
            if not ipaddress.ip_address(ip).is_loopback:
                bad.append(f"{p.name()} (pid {p.pid}) {c.type.name} {c.laddr.ip}:{c.laddr.port}")
    return bad


def _clean_exit(run: _Run, code, seconds: float, sig: int) -> None:
    out = run.output()
    # a process that does not exit within stop()'s timeout has code None: the bound is a
    # hang guard there, not a timing assert here
    assert code == 128 + sig, f"exit {code} after {seconds:.0f} s:\n{out[-3000:]}"
    for needle in ("SIGTERM received", "Traceback", "graceful_shutdown failed"):
        assert needle not in out, out[-3000:]
    assert signal.Signals(sig).name in out or "interrupted" in out, out[-2000:]


def test_serve_binds_loopback_only_cuts_slow_clients_and_stops_on_sigterm():
    root = Path(tempfile.mkdtemp(prefix="mxs-"))
    model = make_model_dir(root / "m", "hic", "infer")
    port = free_port()
    run = _Run(["serve", "--checkpoint", str(model), "--port", str(port),
                "http_ingress=proxy", "request_timeout_s=3"], root)
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        run.wait_for(healthy, timeout=240)
        processes = run.session()
        assert len(processes) >= 5, processes  # gcs, raylet, agents, controller, replica
        bad = _non_loopback(processes)
        assert not bad, f"listening beyond loopback: {bad}"

        # a body that never comes (lying Content-Length) is cut by request_timeout_s
        # (the client waits 20 s, far past the 3 s timeout: a hang guard, not a timing)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"POST /v1/hic HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 100000\r\n\r\n{\"epi\": ")
            try:
                reply = s.recv(4096)  # b"" (closed) or an error status
            except TimeoutError:
                reply = None
        assert reply is not None, "the connection was held 20 s: request_timeout_s=3 not applied"
        assert reply == b"" or not reply.startswith(b"HTTP/1.1 200"), reply[:200]

        code, seconds = run.stop(signal.SIGTERM)
        left = run.kill_left()
        _clean_exit(run, code, seconds, signal.SIGTERM)
        assert not left, f"processes of the Ray session left running: {left}"
    finally:
        run.kill_left()


def test_prepare_stops_cleanly_on_sigint():
    """Ctrl-C while prepare's Ray Data job runs: one line, exit 130, no Ray process left."""
    genome = cached_genome()
    root = Path(tempfile.mkdtemp(prefix="mxp-"))
    run = _Run(["prepare", "prepare-demo", f"root={genome.mcool.parent}",
                f"out={root / 'data'}", "splits.test=[chr1]"], root)
    try:
        psutil = _psutil()

        def ray_up():  # a Ray worker of this run exists: the pipeline is under way
            return [p for p in run.session() if "default_worker" in " ".join(p.cmdline())
                    or p.name().startswith("ray::")]

        try:
            run.wait_for(ray_up, timeout=180)
        except AssertionError:
            if run.proc.poll() == 0:
                pytest.skip("prepare finished before it could be interrupted")
            raise
        time.sleep(2)
        code, seconds = run.stop(signal.SIGINT)
        left = run.kill_left()
        _clean_exit(run, code, seconds, signal.SIGINT)
        assert not left, f"processes of the Ray session left running: {left}"
        assert psutil.pid_exists(run.proc.pid) is False or run.proc.poll() is not None
    finally:
        run.kill_left()
