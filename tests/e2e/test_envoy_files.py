"""Every file under envoy/ is checked by the tool that will read it.

- Each Envoy bootstrap config (envoy/**/*.yaml with static or dynamic
  resources) passes `envoy --mode validate`, with the module path pointed at
  the module under test. Validation runs the filter's on_configure, so the
  plugin configuration inside is checked too.
- Validation mode does not read LDS files, so each LDS file a bootstrap
  names is validated as that bootstrap with the file's listeners inlined.
- envoy/docker-compose.yaml passes `docker-compose config` (the Debian
  package; no Docker engine needed) and runs the official Envoy 1.40 image
  on envoy/envoy.yaml with the built module, next to the demo upstream; so
  does envoy/fleet/docker-compose.yaml, whose second replica's config
  (envoy/fleet/replica2.yaml) is envoy/fleet/envoy.yaml with its ports moved.
  `make test-compose` (tests/compose) runs both files for real.
- envoy/fleet/etcd-tls.yaml, a transport socket for fleet mode's etcd cluster, passes
  `envoy --mode validate` inside envoy/fleet/envoy.yaml's etcd cluster, where its comment says
  it goes (tests/fleet/test_fleet_tls.py runs it against a TLS etcd).
- No other YAML lies there unchecked.
"""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import harness

ENVOY_DIR = harness.REPO / "envoy"
COMPOSE_FILE = ENVOY_DIR / "docker-compose.yaml"
FLEET_COMPOSE_FILE = ENVOY_DIR / "fleet" / "docker-compose.yaml"
FLEET_REPLICA_2 = ENVOY_DIR / "fleet" / "replica2.yaml"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
VALIDATE_TIMEOUT_S = 120
# Not a bootstrap: a block for the `etcd` cluster of envoy/fleet/envoy.yaml.
ETCD_TLS_BLOCK = ENVOY_DIR / "fleet" / "etcd-tls.yaml"


def yaml_files() -> list[Path]:
    return sorted(p for p in ENVOY_DIR.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def is_bootstrap(doc) -> bool:
    return isinstance(doc, dict) and bool({"static_resources", "dynamic_resources", "admin"} & set(doc))


def is_lds(doc) -> bool:
    return isinstance(doc, dict) and bool(doc.get("resources")) and all(
        r.get("@type") == LISTENER_TYPE for r in doc["resources"])


def lds_path_of(bootstrap: dict) -> Path | None:
    """The LDS file a bootstrap reads, relative paths taken from the repository
    root (the working directory of `make run` and of the examples)."""
    source = bootstrap.get("dynamic_resources", {}).get("lds_config", {}).get("path_config_source")
    if not source:
        return None
    path = Path(source["path"])
    return path if path.is_absolute() else harness.REPO / path


def point_at_module_under_test(node) -> None:
    """Every wasm `vm_config` in a config names the module under test."""
    if isinstance(node, dict):
        local = node.get("vm_config", {}).get("code", {}).get("local", {})
        if "filename" in local:
            local["filename"] = str(harness.wasm_module())
        for value in node.values():
            point_at_module_under_test(value)
    elif isinstance(node, list):
        for value in node:
            point_at_module_under_test(value)


def validate(config: dict, tmp_path: Path, name: str) -> None:
    harness.require_artifacts()
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run([str(harness.envoy_binary()), "--mode", "validate", "-c", str(path)], cwd=harness.REPO,
                            capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S)
    assert result.returncode == 0 and "OK" in result.stdout, (
        f"envoy --mode validate refused {name}:\n{result.stdout}{result.stderr}")


BOOTSTRAPS = [p for p in yaml_files() if is_bootstrap(harness.load_yaml(p))]


def test_every_yaml_is_checked():
    """A YAML file under envoy/ is the compose file, a bootstrap, or an LDS file a bootstrap reads."""
    lds_files = {lds_path_of(harness.load_yaml(p)) for p in BOOTSTRAPS} - {None}
    assert lds_files <= set(yaml_files()), f"a bootstrap names an LDS file that is not there: {lds_files}"
    unchecked = set(yaml_files()) - set(BOOTSTRAPS) - lds_files - {COMPOSE_FILE, FLEET_COMPOSE_FILE, ETCD_TLS_BLOCK}
    assert not unchecked, f"no test knows what to check these with: {sorted(map(str, unchecked))}"
    assert len(BOOTSTRAPS) >= 2  # envoy.yaml and dynamic/envoy.yaml at least


@pytest.mark.parametrize("path", BOOTSTRAPS, ids=[str(p.relative_to(ENVOY_DIR)) for p in BOOTSTRAPS])
def test_envoy_validates(path, tmp_path):
    bootstrap = harness.load_yaml(path)
    point_at_module_under_test(bootstrap)
    harness.point_at_test_certificate(bootstrap, tmp_path)
    lds = lds_path_of(bootstrap)
    if lds is not None:
        bootstrap["dynamic_resources"]["lds_config"]["path_config_source"]["path"] = str(lds)
    validate(bootstrap, tmp_path, "bootstrap.yaml")
    if lds is not None:
        # The listeners the bootstrap would load, as static ones.
        inlined = copy.deepcopy(bootstrap)
        del inlined["dynamic_resources"]
        listeners = harness.load_yaml(lds)["resources"]
        point_at_module_under_test(listeners)
        inlined.setdefault("static_resources", {})["listeners"] = [
            {k: v for k, v in listener.items() if k != "@type"} for listener in listeners]
        validate(inlined, tmp_path, "with-lds-inlined.yaml")


def test_the_etcd_tls_block_validates_in_the_fleet_config(tmp_path):
    block = harness.load_yaml(ETCD_TLS_BLOCK)
    assert set(block) == {"transport_socket"}
    bootstrap = harness.load_yaml(ENVOY_DIR / "fleet" / "envoy.yaml")
    (etcd,) = [cluster for cluster in bootstrap["static_resources"]["clusters"] if cluster["name"] == "etcd"]
    etcd.update(block)
    point_at_module_under_test(bootstrap)
    harness.point_at_test_certificate(bootstrap, tmp_path)
    # The test certificate is self-signed: it can stand for the CA too (validation reads the file).
    context = etcd["transport_socket"]["typed_config"]["common_tls_context"]
    (client,) = context["tls_certificates"]
    context["validation_context"]["trusted_ca"]["filename"] = client["certificate_chain"]["filename"]
    validate(bootstrap, tmp_path, "fleet-with-etcd-tls.yaml")


def test_dynamic_listener_is_the_demo_listener():
    """envoy/dynamic/lds.yaml serves the demo's listener: same address, HTTP
    settings, filters and plugin configuration as envoy/envoy.yaml (the routes
    may differ), so the dynamic example is the demo, only reloadable."""
    (dynamic,) = harness.load_yaml(harness.DYNAMIC_LDS)["resources"]
    static = harness._listener(harness.load_demo_envoy_config())
    assert dynamic["name"] == static["name"]
    assert dynamic["address"] == static["address"]
    hcm = [listener["filter_chains"][0]["filters"][0]["typed_config"] for listener in (dynamic, static)]
    without_routes = [{k: v for k, v in h.items() if k != "route_config"} for h in hcm]
    assert without_routes[0] == without_routes[1]
    bootstrap = harness.load_yaml(harness.DYNAMIC_BOOTSTRAP)
    demo = harness.load_demo_envoy_config()
    assert bootstrap["static_resources"]["clusters"] == demo["static_resources"]["clusters"]
    assert bootstrap["admin"] == demo["admin"]
    assert lds_path_of(bootstrap) == harness.DYNAMIC_LDS


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        raise FileNotFoundError("docker-compose not found: `make e2e-tools` installs the Debian package "
                                "(apt-get install --no-install-recommends docker-compose)")
    return found


def test_docker_compose_config():
    result = subprocess.run([docker_compose(), "-f", str(COMPOSE_FILE), "config"], cwd=ENVOY_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = yaml.safe_load(result.stdout)
    envoy, upstream = resolved["services"]["envoy"], resolved["services"]["demo_upstream"]
    # The official image, Envoy 1.40, on the demo config.
    assert envoy["image"] == "envoyproxy/envoy:v1.40.0"
    assert envoy["command"][:3] == ["envoy", "-c", "envoy/envoy.yaml"]
    # The repository, read-only, as the working directory: the demo config
    # and the module it names relative to that directory (where `make build`
    # puts it) are both inside.
    (mount,) = envoy["volumes"]
    source, target, mode = mount.split(":")
    assert (Path(source), mode, envoy["working_dir"]) == (harness.REPO, "ro", target)
    assert (harness.REPO / envoy["command"][2]).is_file()
    module = harness.wasm_filter(harness.load_demo_envoy_config())["vm_config"]["code"]["local"]["filename"]
    assert module == harness.DEMO_WASM_PATH and not Path(module).is_absolute()
    # The demo upstream, on the port envoy.yaml sends to, started first.
    assert upstream["volumes"] == [f"{ENVOY_DIR / 'demo_upstream.py'}:/demo_upstream.py:ro"]
    assert upstream["command"][-2:] == ["/demo_upstream.py", "8081"]
    assert "demo_upstream" in envoy["depends_on"]
    # The sandbox upstream, on the sandbox cluster's port, answering as "sandbox".
    sandbox = resolved["services"]["sandbox_upstream"]
    assert sandbox["command"][-3:] == ["/demo_upstream.py", "8083", "sandbox"]
    assert "sandbox_upstream" in envoy["depends_on"]
    assert envoy["network_mode"] == upstream["network_mode"] == "host"


def test_fleet_docker_compose_config():
    """The fleet's compose file: three etcd members forming one cluster, two replicas on the
    fleet configs (the repository mounted as in envoy/docker-compose.yaml), the upstreams."""
    result = subprocess.run([docker_compose(), "-f", str(FLEET_COMPOSE_FILE), "config"], cwd=ENVOY_DIR / "fleet",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"etcd1", "etcd2", "etcd3", "replica1", "replica2", "demo_upstream", "sandbox_upstream"}
    assert all(service["network_mode"] == "host" for service in services.values())
    # etcd's members listen where envoy/fleet/envoy.yaml's etcd cluster sends.
    clusters = {c["name"]: c for c in harness.load_yaml(ENVOY_DIR / "fleet" / "envoy.yaml")["static_resources"]["clusters"]}
    etcd_ports = [e["endpoint"]["address"]["socket_address"]["port_value"]
                  for e in clusters["etcd"]["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    members = [services[f"etcd{i}"] for i in (1, 2, 3)]
    assert [m["command"][m["command"].index("--listen-client-urls") + 1] for m in members] == [
        f"http://127.0.0.1:{port}" for port in etcd_ports]
    peers = ",".join(f"m{i}={m['command'][m['command'].index('--initial-advertise-peer-urls') + 1]}"
                     for i, m in enumerate(members, start=1))
    assert all(m["environment"]["ETCD_INITIAL_CLUSTER"] == peers for m in members)
    for name, config in (("replica1", "envoy/fleet/envoy.yaml"), ("replica2", "envoy/fleet/replica2.yaml")):
        replica = services[name]
        assert replica["image"] == services["replica1"]["image"] == "envoyproxy/envoy:v1.40.0"
        assert replica["command"][:3] == ["envoy", "-c", config] and "--disable-hot-restart" in replica["command"]
        assert replica["volumes"] == [f"{harness.REPO}:/tokengate:ro"] and replica["working_dir"] == "/tokengate"
    assert services["demo_upstream"]["command"][-2:] == ["/demo_upstream.py", "8081"]
    assert services["sandbox_upstream"]["command"][-3:] == ["/demo_upstream.py", "8083", "sandbox"]


def test_fleet_replica_2_is_the_fleet_config_with_its_ports_moved():
    """envoy/fleet/replica2.yaml is written by envoy/fleet/replicas.py, as `make fleet` writes
    its second replica's: an edit to envoy/fleet/envoy.yaml must be carried over (its header
    says how)."""
    sys.path.insert(0, str(ENVOY_DIR / "fleet"))
    import replicas

    assert harness.load_yaml(FLEET_REPLICA_2) == replicas.render(8090, 9902, tls_port=8253)


def test_docker_compose_refuses_a_broken_file(tmp_path):
    """The check has teeth: a misspelt key fails `docker-compose config`."""
    broken = harness.load_yaml(COMPOSE_FILE)
    broken["services"]["envoy"]["imgae"] = broken["services"]["envoy"].pop("image")
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run([docker_compose(), "-f", str(path), "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout


def test_make_run_config_validates(tmp_path):
    """`make run` starts envoy/envoy.yaml with web/envoy-console.yaml merged in (the API
    console's cluster): validate exactly that merge, the way Envoy does it."""
    harness.require_artifacts()
    bootstrap = harness.load_yaml(ENVOY_DIR / "envoy.yaml")
    point_at_module_under_test(bootstrap)
    harness.point_at_test_certificate(bootstrap, tmp_path)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    console = (harness.REPO / "web" / "envoy-console.yaml").read_text()
    result = subprocess.run([str(harness.envoy_binary()), "--mode", "validate", "-c", str(path), "--config-yaml", console],
                            cwd=harness.REPO, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S)
    assert result.returncode == 0 and "OK" in result.stdout, f"{result.stdout}{result.stderr}"
