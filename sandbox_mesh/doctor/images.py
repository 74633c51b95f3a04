"""Are the mesh's images there, and were they built from this tree?

images/build.sh labels each image with `sandbox-mesh.inputs`: a sha256 over
its build context (Dockerfile, the files copied in, extra CA certificates)
and its parent image's id. The doctor computes the same value from the
working tree, which takes a few milliseconds, and compares: an image whose
label differs was built from other sources than these, whatever its date.
(Comparing the image's creation time with the newest input file instead
would warn forever after a checkout touched files that did not change,
since build.sh then rightly skips the build.)

The value depends on the build context exactly as build.sh stages it: files
copied with tar (modes after our umask, caches left out) and every `*.crt`
of EXTRA_CA_DIR as mode 0644 under `ca/`. Change `hash_tree`, `copy_tree`
or `stage_cas` there and `context_files` here changes with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Mapping

import docker

from sandbox_mesh.doctor.report import FAIL, PASS, WARN, Check

INPUTS_LABEL = "sandbox-mesh.inputs"
BASE_IMAGE = "sandbox-mesh/base:bookworm"
RUNTIME_IMAGE = "sandbox-mesh/runtime:local"
DATASCIENCE_IMAGE = "sandbox-mesh/runtime-datascience:local"
SERVICES_IMAGE = "sandbox-mesh/services:local"
RUNTIME_IMAGES = (RUNTIME_IMAGE, DATASCIENCE_IMAGE)
MESH_IMAGES = (*RUNTIME_IMAGES, SERVICES_IMAGE)
DEFAULT_EXTRA_CA_DIR = "/usr/local/share/ca-certificates"
# What copy_tree leaves out, by name, at any depth.
SKIPPED_NAMES = ("__pycache__", ".pytest_cache")
SKIPPED_SUFFIXES = (".pyc", ".egg-info")
CA_FILE_MODE = 0o644


@dataclasses.dataclass(frozen=True)
class ContextFile:
    name: str  # relative to the build context, as find prints it without "./"
    mode: int
    source: pathlib.Path


def source_tree() -> pathlib.Path | None:
    """The checkout this package runs from, when it is one (make doctor)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    return root if (root / "images" / "build.sh").is_file() else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _skipped(name: str) -> bool:
    return name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES)


def copied_tree(source: pathlib.Path, prefix: str, umask: int) -> list[ContextFile]:
    """The regular files copy_tree puts under ``prefix``."""
    found = []
    for directory, subdirectories, names in os.walk(source):
        subdirectories[:] = [d for d in subdirectories if not _skipped(d)]
        for name in names:
            path = pathlib.Path(directory, name)
            if _skipped(name) or path.is_symlink() or not path.is_file():
                continue
            mode = (path.stat().st_mode & 0o7777) & ~umask
            found.append(ContextFile(prefix + path.relative_to(source).as_posix(), mode, path))
    return found


def staged_cas(ca_dir: pathlib.Path, prefix: str = "ca/") -> list[ContextFile]:
    if not ca_dir.is_dir():
        return []
    found = []
    for directory, _subdirectories, names in os.walk(ca_dir, followlinks=True):
        for name in names:
            path = pathlib.Path(directory, name)
            if name.endswith(".crt") and path.is_file():
                found.append(ContextFile(prefix + path.relative_to(ca_dir).as_posix(), CA_FILE_MODE, path))
    return found


def hash_tree(files: list[ContextFile]) -> str:
    """build.sh's hash_tree: `find -printf '%m %p'` sorted, then sha256sum's
    lines in path order, all hashed together."""
    listing = sorted(f"{f.mode:o} ./{f.name}\n".encode() for f in files)
    in_order = sorted(files, key=lambda f: f"./{f.name}".encode())
    sums = [f"{hashlib.sha256(f.source.read_bytes()).hexdigest()}  ./{f.name}\n".encode() for f in in_order]
    return hashlib.sha256(b"".join(listing) + b"".join(sums)).hexdigest()


def context_files(recipe: str, tree: pathlib.Path, ca_dir: pathlib.Path) -> list[ContextFile]:
    """The build context build.sh stages for ``recipe`` (a folder of images/)."""
    umask = _umask()
    images = tree / "images"
    if recipe == "runtime":
        own = [f for f in copied_tree(images / "runtime", "", umask) if not f.name.startswith("ca/")]
        return own + staged_cas(ca_dir)
    if recipe == "runtime-datascience":
        copied = ("Dockerfile", "requirements.txt")
        return [f for f in copied_tree(images / "runtime-datascience", "", umask) if f.name in copied]
    if recipe == "services":
        pyproject = tree / "pyproject.toml"
        dockerfile = images / "services" / "Dockerfile"
        return [
            ContextFile("Dockerfile", (dockerfile.stat().st_mode & 0o7777) & ~umask, dockerfile),
            *copied_tree(tree / "services", "src/services/", umask),
            *copied_tree(tree / "stubs", "src/stubs/", umask),
            ContextFile("src/pyproject.toml", (pyproject.stat().st_mode & 0o7777) & ~umask, pyproject),
            *staged_cas(ca_dir),
        ]
    raise ValueError(f"no recipe {recipe!r}")


# Each image's recipe (its folder of images/) and the image it is built on.
KINDS = {
    RUNTIME_IMAGE: ("runtime", BASE_IMAGE),
    DATASCIENCE_IMAGE: ("runtime-datascience", RUNTIME_IMAGE),
    SERVICES_IMAGE: ("services", BASE_IMAGE),
}


def expected_inputs(recipe: str, parent_id: str, tree: pathlib.Path, ca_dir: pathlib.Path) -> str:
    """The label build.sh would give the image of ``recipe`` built now from ``tree``."""
    tree_hash = hash_tree(context_files(recipe, tree, ca_dir))
    return hashlib.sha256(f"parent={parent_id}\n{tree_hash}\n".encode()).hexdigest()


def images_check(
    engine: docker.DockerClient,
    images: tuple[str, ...] = MESH_IMAGES,
    tree: pathlib.Path | None = None,
    ca_dir: pathlib.Path | None = None,
    kinds: Mapping[str, tuple[str, str]] = KINDS,
) -> Check:
    """Fails on a missing image, warns on one built from other inputs than
    ``tree`` (none: presence only)."""
    found, missing = {}, []
    for image in images:
        try:
            found[image] = engine.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        return Check("images", FAIL, f"missing: {', '.join(missing)}", "make images")
    if tree is None:
        return Check("images", PASS, f"{', '.join(images)} (no source tree here to tell if current)")
    cas = ca_dir or pathlib.Path(os.environ.get("EXTRA_CA_DIR") or DEFAULT_EXTRA_CA_DIR)
    stale, unknown = [], []
    for image, built in found.items():
        try:
            recipe, parent = kinds[image]
            parent_id = engine.images.get(parent).id or ""
            expected = expected_inputs(recipe, parent_id, tree, cas)
        except (KeyError, OSError, docker.errors.ImageNotFound):
            unknown.append(image)
            continue
        if (built.labels or {}).get(INPUTS_LABEL) != expected:
            stale.append(image)
    if stale:
        return Check("images", WARN, f"built from other sources than {tree}: {', '.join(stale)}", "make images")
    detail = f"{', '.join(images)}, current"
    if unknown:
        return Check("images", WARN, f"{detail} but for {', '.join(unknown)} (cannot tell)", "make images")
    return Check("images", PASS, detail)
