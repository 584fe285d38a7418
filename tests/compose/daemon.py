"""A private Docker daemon for the compose tests, started and stopped by them.

Debian's `dockerd` runs here without touching the host's network: no iptables rules, no
masquerading, no default bridge (`--iptables=false --ip-masq=false --bridge=none`). Its data,
its runtime state and its socket live under one directory (`--data-root`, `--exec-root`,
`-H unix://`), so it never meets a system daemon, and `stop()` removes that directory once
the daemon has exited and unmounted everything it mounted there.

The daemon needs root: `sudo` is the command prefix (`sudo -n` from the Makefile unless root),
used for the daemon and for every client call, since its socket is root's.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60


class DockerDaemon:
    def __init__(self, root: Path, sudo: str = "") -> None:
        self.root = root
        self.sudo = shlex.split(sudo)
        self.socket = root / "docker.sock"
        self.log_path = root.parent / f"{root.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def docker(self) -> list[str]:
        """The client command, talking to this daemon only."""
        return [*self.sudo, "docker", "-H", self.host]

    @property
    def compose(self) -> list[str]:
        """Debian's docker-compose (v1), talking to this daemon only."""
        return [*self.sudo, "env", f"DOCKER_HOST={self.host}", "docker-compose"]

    def start(self) -> "DockerDaemon":
        pidfile = self.root / "dockerd.pid"
        if pidfile.exists() and Path(f"/proc/{pidfile.read_text().strip()}").exists():
            raise RuntimeError(f"a dockerd from an earlier run is still running ({pidfile}); stop it first")
        if self.mounts():
            raise RuntimeError(f"mounts left under {self.root}: {self.mounts()}; unmount them first")
        if self.root.exists():
            # What a killed run left, its daemon gone.
            self._remove_root()
        self.root.mkdir(parents=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.sudo, "dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none",
             "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "-H", self.host],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            ready = subprocess.run([*self.docker, "version"], capture_output=True, timeout=30)
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stops the daemon (it stops its containers first), then checks that it left no mount
        behind and removes its directory."""
        if self.proc is not None and self.proc.poll() is None:
            # sudo passes SIGTERM on to dockerd.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # dockerd bind-mounts the host's network namespace at <exec-root>/netns/default and does
        # not unmount it when it exits; whatever else is left is a failure.
        own_namespace = str(self.root / "exec" / "netns" / "default")
        if own_namespace in self.mounts():
            subprocess.run([*self.sudo, "umount", own_namespace], check=True, timeout=30)
        left = self.mounts()
        if left:
            raise RuntimeError(f"dockerd left mounts under {self.root}: {left}")
        self._remove_root()

    def mounts(self) -> list[str]:
        """The mount points under the daemon's directory, from /proc/self/mountinfo."""
        points = []
        with open("/proc/self/mountinfo") as info:
            for line in info:
                point = line.split()[4]
                if point == str(self.root) or point.startswith(f"{self.root}/"):
                    points.append(point)
        return points

    def _remove_root(self) -> None:
        subprocess.run([*self.sudo, "rm", "-rf", str(self.root)], check=True, timeout=120)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
