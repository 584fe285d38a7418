"""A real etcd cluster on loopback: N members (Debian's etcd-server), each in its own data
directory, started and stopped member by member. Used by `make fleet` and the fleet tests.

    python3 envoy/fleet/etcd_cluster.py --members 3 --client-port 2379 --dir /tmp/tg-etcd

runs until Ctrl-C. Each member listens for clients on client_port + 100*i and for peers on
client_port + 100*i + 1 (2379/2380, 2479/2480, 2579/2580 by default). History is compacted
every few minutes (revision mode), so a watch far behind is told to start again.

With `partitionable=True` (tests only) every member's peers reach it through a relay, so that
`isolate(member)` can cut one member off from the others while it keeps serving its clients,
as a network partition does.

With `tls=EtcdTls.make(directory)` (or `--tls DIR`) the members serve their clients over TLS and
demand a client certificate signed by the rig's CA (`--client-cert-auth`), and speak TLS to
each other with the same certificates; see docs/fleet.md, "Securing etcd".
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from envoy_launcher import free_port_pair  # noqa: E402  (shared with the bench's etcd)

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
START_TIMEOUT_S = 30


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class EtcdTls:
    """Certificates for a TLS etcd, made by the openssl CLI into one directory (keys readable
    by their owner only): a CA; one server certificate every member presents to its clients
    and its peers; the client certificate tokengate presents (`client`); one for the rig's
    etcdctl (`etcdctl`); and a client certificate from a second CA etcd does not trust
    (`untrusted`), to show that etcd refuses it."""

    directory: Path
    # The DNS name in the members' certificate, which envoy/fleet/etcd-tls.yaml checks.
    SERVER_NAME = "etcd.tokengate.internal"
    # The Common Name of tokengate's client certificate: its etcd user once auth is enabled.
    CLIENT_USER = "tokengate"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @classmethod
    def make(cls, directory: Path) -> "EtcdTls":
        tls = cls(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tls._authority("ca")
        tls._authority("untrusted-ca")
        # Members are reached by address (etcdctl, peers) and by name (Envoy checks the name).
        tls._leaf("server", "ca", "etcd member", f"DNS:{cls.SERVER_NAME},DNS:localhost,IP:127.0.0.1",
                  "serverAuth,clientAuth")
        tls._leaf("client", "ca", cls.CLIENT_USER, None, "clientAuth")
        tls._leaf("etcdctl", "ca", "root", None, "clientAuth")
        tls._leaf("untrusted", "untrusted-ca", cls.CLIENT_USER, None, "clientAuth")
        return tls

    def _authority(self, name: str) -> None:
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-days", "2", "-subj", f"/CN=tokengate test {name}",
                 "-keyout", str(self.key(name)), "-out", str(self.cert(name)))

    def _leaf(self, name: str, issuer: str, common_name: str, alt_names: str | None, usage: str) -> None:
        request = self.directory / f"{name}.csr"
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", f"/CN={common_name}", "-keyout", str(self.key(name)), "-out", str(request))
        extensions = self.directory / f"{name}.ext"
        lines = [f"extendedKeyUsage={usage}", "keyUsage=digitalSignature,keyEncipherment"]
        if alt_names:
            lines.append(f"subjectAltName={alt_names}")
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("x509", "-req", "-in", str(request), "-CA", str(self.cert(issuer)),
                 "-CAkey", str(self.key(issuer)), "-CAcreateserial", "-days", "2",
                 "-extfile", str(extensions), "-out", str(self.cert(name)))
        for path in (self.key(name), self.key(issuer)):
            path.chmod(0o600)
        request.unlink()
        extensions.unlink()

    def etcdctl_flags(self) -> list[str]:
        return ["--cacert", str(self.ca), "--cert", str(self.cert("etcdctl")), "--key", str(self.key("etcdctl"))]

    def member_flags(self) -> list[str]:
        server = [str(self.ca), str(self.cert("server")), str(self.key("server"))]
        return [
            "--client-cert-auth", "--trusted-ca-file", server[0], "--cert-file", server[1], "--key-file", server[2],
            "--peer-client-cert-auth", "--peer-trusted-ca-file", server[0],
            "--peer-cert-file", server[1], "--peer-key-file", server[2],
        ]


class PeerRelay:
    """A TCP relay in front of one member's peer port. Its `cut` set names the members that are
    partitioned away: a connection to a cut member, or from one, is refused or closed. etcd's
    peers say who they are in every raft request (`X-Server-From: <member id in hex>`), and a
    connection only ever carries requests of the member that opened it."""

    def __init__(self, target_port: int, cut: set[str]) -> None:
        self.target_port = target_port
        self.member_id = ""  # this member's id in hex, known once the cluster runs
        self.cut = cut
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[tuple[str, socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inbound, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(inbound,), daemon=True).start()

    def _relay(self, inbound: socket.socket) -> None:
        head = b""
        inbound.settimeout(5)
        try:
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = inbound.recv(4096)
                if not chunk:
                    break
                head += chunk
            inbound.settimeout(None)
            sender = ""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"x-server-from:"):
                    sender = line.split(b":", 1)[1].strip().decode()
            if self._is_cut(sender):
                raise OSError("partitioned")
            outbound = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            outbound.settimeout(None)
            outbound.sendall(head)
        except OSError:
            inbound.close()
            return
        with self.lock:
            self.open.append((sender, inbound, outbound))
        threading.Thread(target=self._pump, args=(outbound, inbound), daemon=True).start()
        self._pump(inbound, outbound)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _is_cut(self, sender: str) -> bool:
        return self.member_id in self.cut or (sender != "" and sender in self.cut)

    def enforce(self) -> None:
        """Closes the open connections the `cut` set now forbids."""
        with self.lock:
            doomed = [entry for entry in self.open if self._is_cut(entry[0])]
            self.open = [entry for entry in self.open if entry not in doomed]
        for _, inbound, outbound in doomed:
            for sock in (inbound, outbound):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    relay: PeerRelay | None = None
    scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """Where the member listens for its peers."""
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def advertised_peer_url(self) -> str:
        """Where its peers reach it: through the relay when there is one."""
        port = self.relay.port if self.relay else self.peer_port
        return f"{self.scheme}://127.0.0.1:{port}"


@dataclass
class EtcdCluster:
    root: Path
    size: int = 3
    client_port: int = 0
    partitionable: bool = False
    tls: EtcdTls | None = None
    # etcd's --auto-compaction-mode and --auto-compaction-retention
    compaction: tuple[str, str] = ("revision", "100000")
    # More flags for every member (e.g. --auth-token).
    extra_flags: tuple[str, ...] = ()
    # Once enable_password_auth has run: root's password, which the rig's etcdctl logs in with.
    root_password: str | None = None
    members: list[Member] = field(default_factory=list)
    # Member ids (hex) cut off from the others; shared by every relay.
    cut: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The relay reads each peer request's sender from its plain HTTP headers.
        assert not (self.tls and self.partitionable), "a partitionable cluster speaks plain HTTP to its peers"
        self.root.mkdir(parents=True, exist_ok=True)
        scheme = "https" if self.tls else "http"
        for i in range(self.size):
            if self.client_port:
                client = self.client_port + 100 * i
                peer = client + 1
            else:
                client = free_port_pair()
                peer = client + 1
            name = f"m{i + 1}"
            relay = PeerRelay(peer, self.cut) if self.partitionable else None
            self.members.append(
                Member(name, client, peer, self.root / name, self.root / f"{name}.log", relay=relay, scheme=scheme)
            )

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.advertised_peer_url}" for m in self.members)

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def start(self) -> "EtcdCluster":
        for member in self.members:
            self.start_member(member, wait=False)
        self.wait_healthy()
        return self

    def start_member(self, member: Member, wait: bool = True) -> None:
        # A member that was stopped keeps its data directory and rejoins as itself.
        state = "existing" if member.data_dir.exists() else "new"
        command = [
            ETCD,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.advertised_peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", "tokengate-fleet",
            "--auto-compaction-mode", self.compaction[0],
            "--auto-compaction-retention", self.compaction[1],
            *(self.tls.member_flags() if self.tls else []),
            *self.extra_flags,
        ]
        log = member.log_path.open("ab")
        member.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_healthy([member])

    def stop_member(self, member: Member) -> None:
        if member.proc and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGTERM)
            try:
                member.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                member.proc.kill()
                member.proc.wait()
        member.proc = None

    def stop(self) -> None:
        for member in self.members:
            self.stop_member(member)
            if member.relay:
                member.relay.close()

    def isolate(self, member: Member) -> None:
        """Cuts `member` off from its peers (both ways; `partitionable` clusters only). It keeps
        running and serving its clients from what it has."""
        assert member.relay, "isolate needs EtcdCluster(partitionable=True)"
        self.cut.add(self._member_id(member))
        for each in self.members:
            if each.relay:
                each.relay.enforce()

    def heal(self) -> None:
        self.cut.clear()

    def _member_id(self, member: Member) -> str:
        import json

        out = self.etcdctl("member", "list", "--write-out", "json")
        for listed in json.loads(out)["members"]:
            if listed.get("name") == member.name:
                member_id = format(listed["ID"], "x")
                if member.relay:
                    member.relay.member_id = member_id
                return member_id
        raise RuntimeError(f"{member.name} is not in the member list")

    def running(self) -> list[Member]:
        return [m for m in self.members if m.proc and m.proc.poll() is None]

    def etcdctl(self, *args: str, timeout: float = 10) -> str:
        endpoints = ",".join(m.client_url for m in self.running()) or self.endpoints
        done = subprocess.run(
            [ETCDCTL, "--endpoints", endpoints, "--command-timeout=3s", *self._etcdctl_tls(), *self._etcdctl_user(),
             *args],
            capture_output=True, text=True, timeout=timeout, env={"ETCDCTL_API": "3"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def enable_auth(self, user: str, prefix: str) -> None:
        """Turns on etcd's access control (TLS clusters: users are certificates' Common Names,
        which etcd takes as the user under --client-cert-auth, so nobody has a password):
        `root`, the rig's etcdctl, may do anything; `user` may read and write under `prefix`
        and nothing else."""
        assert self.tls, "users without passwords are named by client certificates"
        for command in (
            ("user", "add", "root", "--no-password"),
            ("role", "add", "root"),
            ("user", "grant-role", "root", "root"),
            ("user", "add", user, "--no-password"),
            ("role", "add", user),
            ("role", "grant-permission", user, "--prefix=true", "readwrite", prefix),
            ("user", "grant-role", user, user),
            ("auth", "enable"),
        ):
            self.etcdctl(*command)

    def enable_password_auth(self, user: str, password: str, prefix: str) -> None:
        """Turns on etcd's access control with passwords (docs/fleet.md, "etcd users with
        passwords"): `root` may do anything, `user` may read and write under `prefix` only."""
        root_password = "root-" + password
        for command in (
            ("user", "add", f"root:{root_password}"),
            ("role", "add", "root"),
            ("user", "grant-role", "root", "root"),
            ("user", "add", f"{user}:{password}"),
            ("role", "add", user),
            ("role", "grant-permission", user, "--prefix=true", "readwrite", prefix),
            ("user", "grant-role", user, user),
            ("auth", "enable"),
        ):
            self.etcdctl(*command)
        self.root_password = root_password

    def _etcdctl_user(self) -> list[str]:
        return ["--user", f"root:{self.root_password}"] if self.root_password else []

    def _etcdctl_tls(self) -> list[str]:
        return self.tls.etcdctl_flags() if self.tls else []

    def leader(self) -> Member:
        """The member that leads the cluster now."""
        out = self.etcdctl("endpoint", "status", "--write-out", "json", "--endpoints", self.endpoints)
        import json

        for status in json.loads(out):
            if status["Status"]["leader"] == status["Status"]["header"]["member_id"]:
                endpoint = status["Endpoint"]
                return next(m for m in self.members if m.client_url == endpoint)
        raise RuntimeError("no leader")

    def wait_healthy(self, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        members = members or self.members
        while time.monotonic() < deadline:
            for member in members:
                if member.proc and member.proc.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited; log:\n{self.logs()}")
            urls = ",".join(m.client_url for m in members)
            done = subprocess.run(
                [ETCDCTL, "--endpoints", urls, "--command-timeout=1s", *self._etcdctl_tls(), "endpoint", "health"],
                capture_output=True, text=True, env={"ETCDCTL_API": "3"},
            )
            if done.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd not healthy after {START_TIMEOUT_S}s; log:\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        out = []
        for member in self.members:
            if member.log_path.exists():
                lines = member.log_path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- etcd {member.name} ---\n" + "\n".join(lines))
        return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--client-port", type=int, default=2379)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--tls", type=Path, metavar="CERT_DIR",
                        help="serve clients and peers over TLS with client certificates made into CERT_DIR")
    args = parser.parse_args()
    tls = EtcdTls.make(args.tls) if args.tls else None
    cluster = EtcdCluster(args.dir, args.members, args.client_port, tls=tls)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        print(f"etcd cluster up: {cluster.endpoints}", flush=True)
        while all(m.proc and m.proc.poll() is None for m in cluster.members):
            time.sleep(0.5)
        print("an etcd member exited; stopping", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
