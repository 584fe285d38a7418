#!/usr/bin/env python3
"""`make soak-fleet`: a bounded mixed workload over two fleet replicas while etcd and Envoy fail.

Not part of `make test`. A real 3-member etcd (envoy/fleet/etcd_cluster.py) and two replicas with
2 workers each (tests/fleet/rig.py, from envoy/fleet/envoy.yaml). For --seconds (180 by default)
--threads client threads each loop over: issue (client_credentials, or password with a refresh
token), use (a Bearer request), refresh, revoke, and register an application as the admin, each
on a replica picked at random, every request on a fresh connection (so either worker). Each
thread keeps its own grants, so no two requests race on one grant and every answer has one
meaning. Meanwhile, at a third of the run, etcd's leader (or --etcd-member follower) is stopped
and started again; at two thirds, replica 1 is killed (SIGKILL) and started again.

Afterwards, with both replicas up and watching, every grant acknowledged (a 200 with a token,
and each refresh's 200) must be answered 200 on both replicas unless it was revoked (a 200 from
/revoke), in which case 401; every registered application must get a token on both. A grant
whose last request got no definite answer (a 503, a timeout or a closed connection on a refresh
or revoke: its write may or may not have committed) is counted as in doubt and not judged.
Every 5xx is listed with its time from the start of the nearest fault; a 5xx other than 503, or
a 503 further than --window seconds from the end of every fault, fails the soak (docs/fleet.md,
"When etcd fails", names when 503 is the answer). Prints the counts; writes
target/soak-fleet/summary.json. Exits 1 on any failed check.

    make soak-fleet                              # 3 minutes
    SOAK_FLEET_SECONDS=600 make soak-fleet
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
for folder in ("tests/e2e", "tests/fleet", "envoy/fleet"):
    sys.path.insert(0, str(REPO / folder))

import harness  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402
from rig import ADMIN, DEMO, REGISTER, Fleet, plugin_config  # noqa: E402

OUT = REPO / "target" / "soak-fleet"
PREFIX = "soak-fleet/"
TIMEOUT_S = 10
# Operation weights: mostly uses, as real traffic is.
OPERATIONS = {"issue": 20, "use": 50, "refresh": 12, "revoke": 10, "register": 2}
# Below registration.max_per_owner (100 by default): the admin's quota would answer 403.
MAX_REGISTRATIONS = 90
# Room for every grant the run issues (each lives an hour), and for the demo application to hold
# a quarter of them: a full store, or an application at store.max_grants_per_application, answers
# /token 503 (docs/configuration.md).
STORE_CAPACITY = 400_000


@dataclass
class Grant:
    access: str
    refresh: str | None
    # live: acknowledged and not revoked; revoked: /revoke answered 200; in_doubt: see the docstring
    state: str = "live"
    superseded: list[str] = field(default_factory=list)


@dataclass
class Event:
    at: float  # seconds from the start of the run
    operation: str
    replica: int
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    detail: str = ""  # a 5xx's error description (never a token)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.grants: list[Grant] = []
        self.applications: list[tuple[str, str]] = []
        self.violations: list[str] = []

    def note(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


def error_description(reply: requests.Response | None) -> str:
    """A 5xx's `error` and `error_description` (RFC 6749 §5.2), or the start of a body that is
    not one (Envoy's own answers)."""
    if reply is None:
        return ""
    try:
        body = reply.json()
        return f"{body.get('error', '')}: {body.get('error_description', '')}"[:160]
    except ValueError:
        return reply.text[:120]


class Soak:
    def __init__(self, fleet: Fleet, etcd: EtcdCluster, args: argparse.Namespace) -> None:
        self.fleet = fleet
        self.etcd = etcd
        self.args = args
        self.ledger = Ledger()
        self.started = time.monotonic()
        self.deadline = self.started + args.seconds
        self.faults: list[dict] = []

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def send(self, operation: str, replica: int, method: str, path: str, **kwargs) -> requests.Response | None:
        target = self.fleet.replicas[replica]
        try:
            reply = requests.request(method, target.url(path), timeout=TIMEOUT_S,
                                     headers={"Connection": "close", **kwargs.pop("headers", {})}, **kwargs)
        except requests.RequestException:
            reply = None
        status = reply.status_code if reply is not None else 0
        detail = error_description(reply) if status >= 500 else ""
        self.ledger.note(Event(self.now(), operation, replica, status, detail))
        return reply

    # -- the workload ---------------------------------------------------------------------------

    def client(self, seed: int) -> None:
        chance = random.Random(seed)
        mine: list[Grant] = []
        while time.monotonic() < self.deadline:
            operation = chance.choices(list(OPERATIONS), weights=list(OPERATIONS.values()))[0]
            replica = chance.randrange(len(self.fleet.replicas))
            live = [grant for grant in mine if grant.state == "live"]
            if operation == "issue" or not live:
                self.issue(replica, chance, mine)
            elif operation == "use":
                self.use(replica, chance.choice(live))
            elif operation == "refresh":
                refreshable = [grant for grant in live if grant.refresh]
                if refreshable:
                    self.refresh(replica, chance.choice(refreshable))
            elif operation == "revoke":
                self.revoke(replica, chance.choice(live))
            else:
                self.register(replica, seed)
        with self.ledger.lock:
            self.ledger.grants.extend(mine)

    def issue(self, replica: int, chance: random.Random, mine: list[Grant]) -> None:
        form = ({"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1], "scope": "orders:read"}
                if chance.random() < 0.5 else {"grant_type": "client_credentials"})
        reply = self.send("issue", replica, "POST", "/token", data=form, auth=DEMO)
        if reply is not None and reply.status_code == 200:
            body = reply.json()
            mine.append(Grant(body["access_token"], body.get("refresh_token")))

    def use(self, replica: int, grant: Grant) -> None:
        reply = self.send("use", replica, "GET", "/api/orders", headers={"Authorization": f"Bearer {grant.access}"})
        if reply is not None and reply.status_code == 401:
            self.ledger.violation(f"{self.now()} s: a live grant's token refused on replica {replica}")

    def refresh(self, replica: int, grant: Grant) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": grant.refresh}
        reply = self.send("refresh", replica, "POST", "/token", data=form, auth=DEMO)
        if reply is not None and reply.status_code == 200:
            body = reply.json()
            grant.superseded.append(grant.access)
            grant.access, grant.refresh = body["access_token"], body.get("refresh_token")
        elif reply is not None and reply.status_code in (400, 401):
            self.ledger.violation(f"{self.now()} s: a live grant's refresh refused ({reply.status_code}) on {replica}")
            grant.state = "in_doubt"
        else:
            grant.state = "in_doubt"  # committed or not: nobody can tell

    def revoke(self, replica: int, grant: Grant) -> None:
        reply = self.send("revoke", replica, "POST", "/revoke", data={"token": grant.access}, auth=DEMO)
        grant.state = "revoked" if reply is not None and reply.status_code == 200 else "in_doubt"

    def register(self, replica: int, seed: int) -> None:
        with self.ledger.lock:
            if len(self.ledger.applications) >= MAX_REGISTRATIONS:
                return
        body = json.dumps({"clientName": f"soak-{seed}-{time.monotonic_ns()}", "owner": "admin",
                           "grantType": "client_credentials"})
        reply = self.send("register", replica, "POST", REGISTER, data=body, auth=ADMIN,
                          headers={"Content-Type": "application/json"})
        if reply is not None and reply.status_code == 201:
            with self.ledger.lock:
                self.ledger.applications.append((reply.json()["clientId"], reply.json()["clientSecret"]))

    # -- the faults -----------------------------------------------------------------------------

    def wait_until(self, fraction: float) -> None:
        time.sleep(max(0.0, self.started + fraction * self.args.seconds - time.monotonic()))

    def inject_faults(self) -> None:
        self.wait_until(1 / 3)
        member = self.etcd.leader()
        if self.args.etcd_member == "follower":
            member = next(m for m in self.etcd.members if m is not member)
        fault = {"fault": f"etcd {member.name} ({self.args.etcd_member}) stopped and started", "start_s": self.now()}
        self.etcd.stop_member(member)
        time.sleep(self.args.down_seconds)
        self.etcd.start_member(member)
        self.faults.append({**fault, "end_s": self.now()})
        self.wait_until(2 / 3)
        fault = {"fault": "replica 1 killed (SIGKILL) and started again", "start_s": self.now()}
        self.fleet.restart(1)
        self.faults.append({**fault, "end_s": self.now()})

    def run(self) -> None:
        threads = [threading.Thread(target=self.client, args=(seed,)) for seed in range(self.args.threads)]
        for thread in threads:
            thread.start()
        self.inject_faults()
        for thread in threads:
            thread.join()

    # -- afterwards -----------------------------------------------------------------------------

    def check(self) -> dict:
        for replica in self.fleet.replicas:
            replica.wait_for_watch()
        judged = Counter()
        for grant in self.ledger.grants:
            for replica in self.fleet.replicas:
                status = replica.status(grant.access)
                judged[f"{grant.state}: {status}"] += 1
                if grant.state == "live" and status != 200:
                    self.ledger.violation(f"an acknowledged grant answered {status} on {replica.name}")
                if grant.state == "revoked" and status != 401:
                    self.ledger.violation(f"a revoked token answered {status} on {replica.name}")
                for old in grant.superseded:
                    judged[f"superseded by a refresh: {replica.status(old)}"] += 1
        for key, secret in self.ledger.applications:
            for replica in self.fleet.replicas:
                status = replica.post("/token", {"grant_type": "client_credentials"}, (key, secret)).status_code
                judged[f"registered application's /token: {status}"] += 1
                if status != 200:
                    self.ledger.violation(f"a registered application got {status} on {replica.name}")
        return dict(sorted(judged.items()))

    def server_errors(self) -> list[dict]:
        """Every 5xx, with where it fell against the faults."""
        listed = []
        for event in self.ledger.events:
            if event.status < 500:
                continue
            nearest = min(self.faults, key=lambda f: abs(event.at - f["start_s"]), default=None)
            inside = nearest is not None and nearest["start_s"] <= event.at <= nearest["end_s"] + self.args.window
            listed.append({"at_s": event.at, "status": event.status, "operation": event.operation,
                           "replica": event.replica, "detail": event.detail, "fault": nearest["fault"] if nearest else None,
                           "from_fault_start_s": round(event.at - nearest["start_s"], 3) if nearest else None,
                           "within_window": inside})
            if event.status != 503 or not inside:
                self.ledger.violation(f"{event.status} at {event.at} s ({event.operation}) outside every fault window")
        return listed


def summarize(soak: Soak, judged: dict, errors: list[dict]) -> dict:
    events = soak.ledger.events
    by_operation = {operation: dict(sorted(Counter(str(e.status) for e in events if e.operation == operation).items()))
                    for operation in OPERATIONS}
    states = Counter(grant.state for grant in soak.ledger.grants)
    return {
        "seconds": soak.args.seconds, "threads": soak.args.threads, "etcd_compaction": soak.args.compaction,
        "requests": len(events),
        "answers_by_operation": by_operation, "faults": soak.faults,
        "grants": dict(states), "refreshes_acknowledged": sum(len(g.superseded) for g in soak.ledger.grants),
        "applications_registered": len(soak.ledger.applications),
        "no_answer": dict(Counter(f"replica {e.replica}" for e in events if e.status == 0)),
        "server_errors": errors, "final_check": judged, "violations": soak.ledger.violations,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--etcd-member", choices=("leader", "follower"), default="leader")
    parser.add_argument("--down-seconds", type=float, default=5, help="how long the etcd member stays down")
    parser.add_argument("--compaction", default="revision:100000", metavar="MODE:RETENTION",
                        help="etcd's --auto-compaction-mode and --auto-compaction-retention, e.g. periodic:5s")
    parser.add_argument("--window", type=float, default=10,
                        help="seconds after a fault ends in which a 503 still counts as the fault's")
    args = parser.parse_args()
    harness.require_artifacts()
    OUT.mkdir(parents=True, exist_ok=True)
    upstream = harness.Upstream()
    with tempfile.TemporaryDirectory(prefix="soak-fleet-") as work:
        mode, _, retention = args.compaction.partition(":")
        etcd = EtcdCluster(Path(work) / "etcd", 3, compaction=(mode, retention))
        try:
            etcd.start()
            plugin = plugin_config(PREFIX)
            plugin["store"] = {**plugin.get("store", {}), "capacity": STORE_CAPACITY,
                               "max_grants_per_application": STORE_CAPACITY // 4}
            with Fleet(etcd, upstream.port, Path(work) / "fleet", PREFIX, plugin=plugin) as fleet:
                soak = Soak(fleet, etcd, args)
                soak.run()
                judged = soak.check()
                errors = soak.server_errors()
                summary = summarize(soak, judged, errors)
        finally:
            etcd.stop()
            upstream.stop()
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({key: value for key, value in summary.items() if key != "server_errors"}, indent=2))
    print(f"5xx: {len(errors)}, each with its time from its fault's start in {OUT / 'summary.json'}")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
