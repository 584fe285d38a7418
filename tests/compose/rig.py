"""One compose file run for real: the shipped file, with an override file that swaps each public
image for the one built here (compose merges `image:` from a later `-f` file,
https://docs.docker.com/compose/how-tos/multiple-compose-files/merge/), and the README's session
driven against it with `requests`.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

START_TIMEOUT_S = 90
DEMO_APP = ("demo-app", "demo-secret")
# Which locally built image (tests/compose/images.py) stands in for which public one.
LOCAL_STAND_INS = {
    "envoyproxy/envoy": "envoy",
    "python": "python",
    "quay.io/coreos/etcd": "etcd",
}


def stand_in(public_image: str) -> str:
    repository = public_image.rsplit(":", 1)[0]
    if repository not in LOCAL_STAND_INS:
        raise KeyError(f"no locally built image stands in for {public_image}: add one to tests/compose/images.py")
    return LOCAL_STAND_INS[repository]


@dataclass
class ComposeRun:
    compose: list[str]  # the docker-compose command, talking to the test's daemon
    file: Path
    project: str
    override: Path

    @property
    def base(self) -> list[str]:
        return [*self.compose, "-p", self.project, "-f", str(self.file), "-f", str(self.override)]

    def write_override(self, local_images: dict[str, str]) -> dict[str, str]:
        """Writes the override file; returns each service's local image."""
        services = yaml.safe_load(self.file.read_text())["services"]
        images = {name: local_images[stand_in(service["image"])] for name, service in services.items()}
        self.override.write_text(yaml.safe_dump({"services": {name: {"image": image}
                                                               for name, image in images.items()}}))
        return images

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout)

    def up(self) -> None:
        done = self.run("up", "--detach", "--no-build")
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose up failed:\n{done.stdout}{done.stderr}")

    def exited(self) -> list[str]:
        """The services whose container has stopped."""
        done = self.run("ps", "--services", "--filter", "status=exited")
        return done.stdout.split()

    def logs(self) -> str:
        done = self.run("logs", "--no-color", "--tail", "60")
        return done.stdout + done.stderr

    def down(self) -> None:
        done = self.run("down", "--timeout", "10", "--volumes", "--remove-orphans")
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose down failed:\n{done.stdout}{done.stderr}")

    def wait_until_serving(self, urls: list[str]) -> None:
        """Until each gateway issues a token: Envoy has loaded the filter and its upstreams are
        up. Fails at once, with the logs, if a service exits."""
        deadline = time.monotonic() + START_TIMEOUT_S
        waiting = list(urls)
        while waiting:
            stopped = self.exited()
            if stopped:
                raise AssertionError(f"{stopped} exited:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{waiting} not serving after {START_TIMEOUT_S} s:\n{self.logs()}")
            try:
                if token(waiting[0], grant_type="client_credentials").status_code == 200:
                    waiting.pop(0)
                    continue
            except requests.ConnectionError:
                pass
            time.sleep(0.5)


def token(base_url: str, **form: str) -> requests.Response:
    return requests.post(f"{base_url}/token", auth=DEMO_APP, data=form, timeout=10)


def bearer(base_url: str, access_token: str, method: str = "GET", path: str = "/api/orders/42") -> requests.Response:
    return requests.request(method, f"{base_url}{path}", headers={"Authorization": f"Bearer {access_token}"},
                            timeout=10)


def revoke(base_url: str, access_token: str) -> requests.Response:
    return requests.post(f"{base_url}/revoke", auth=DEMO_APP, data={"token": access_token}, timeout=10)


def refused_within(base_url: str, access_token: str, seconds: float) -> requests.Response:
    """The Bearer answer once it is no longer 200, or the last 200 after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        answer = bearer(base_url, access_token)
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)
