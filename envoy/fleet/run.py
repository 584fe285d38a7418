"""`make fleet`: a 3-member etcd cluster on loopback, the demo upstream, the API console's
file server and two tokengate replicas in fleet mode (2 workers each):

    replica 1  http://127.0.0.1:8080, https://127.0.0.1:8243  (admin http://127.0.0.1:9901)
    replica 2  http://127.0.0.1:8090, https://127.0.0.1:8253  (admin http://127.0.0.1:9902)
    etcd       http://127.0.0.1:2379, :2479, :2579

etcd keeps its data in target/fleet/etcd, so tokens outlive the replicas (and a second
`make fleet`); `make fleet-clean` forgets them. Ctrl-C stops everything this started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(REPO / "tools")]

import envoy_launcher as launcher  # noqa: E402  (every runner's Envoy command and stop)
import replicas  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402

WORK = REPO / "target" / "fleet"
CONCURRENCY = int(os.environ.get("CONCURRENCY", "2"))
# (listener, TLS listener, admin); the TLS certificate is `make tls`'s, in target/tls/.
REPLICAS = [(8080, 8243, 9901), (8090, 8253, 9902)]
CONSOLE_YAML = REPO / "web" / "envoy-console.yaml"


def say(text: str) -> None:
    print(f"fleet: {text}", flush=True)


def start_envoy(index: int, listener: int, tls: int, admin: int) -> subprocess.Popen:
    config = replicas.write(replicas.render(listener, admin, tls_port=tls), WORK / f"replica{index}.yaml")
    command = launcher.EnvoyCommand(config, concurrency=CONCURRENCY, base_id=10 + index,
                                    config_yaml=CONSOLE_YAML.read_text(),
                                    log_level="warn", component_log_level="wasm:info")
    return command.start(WORK / f"replica{index}.log", append=True)


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    cluster = EtcdCluster(WORK / "etcd", 3, 2379)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        say("starting etcd (3 members) ...")
        cluster.start()
        say(f"etcd up: {cluster.endpoints}")
        python = sys.executable
        children.append(subprocess.Popen([python, str(REPO / "envoy" / "demo_upstream.py"), "8081"],
                                         stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        children.append(subprocess.Popen([python, str(REPO / "envoy" / "demo_upstream.py"), "8083", "sandbox"],
                                         stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        children.append(subprocess.Popen([python, str(REPO / "web" / "serve_console.py"), "8082"],
                                         stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL))
        for index, (listener, tls, admin) in enumerate(REPLICAS, start=1):
            children.append(start_envoy(index, listener, tls, admin))
            say(f"replica {index}: http://127.0.0.1:{listener}, https://127.0.0.1:{tls}"
                f" (admin http://127.0.0.1:{admin}),"
                f" log {WORK / f'replica{index}.log'}")
        say("API console: http://127.0.0.1:8080/console/ and http://127.0.0.1:8090/console/")
        say("Ctrl-C stops everything")
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    say(f"{' '.join(child.args[:3])} exited with {child.returncode}; stopping")
                    return 1
            if not cluster.running():
                say("every etcd member has exited; stopping")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            launcher.stop(child)  # SIGKILL for one still running 10 s after the SIGTERM above
        cluster.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
