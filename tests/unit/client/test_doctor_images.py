"""The doctor's image inputs hash is images/build.sh's, computed without
building: the same fake tree staged and hashed by build.sh's own shell
functions gives the same value."""

from __future__ import annotations

import pathlib
import subprocess

from sandbox_mesh.doctor import images

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARENT = "sha256:" + "1" * 64


def make_tree(tree: pathlib.Path) -> None:
    runtime = tree / "images" / "runtime"
    (runtime / "lib" / "__pycache__").mkdir(parents=True)
    (runtime / "Dockerfile").write_text("FROM base\n")
    (runtime / "runner.py").write_text("print('run')\n")
    (runtime / "runner.py").chmod(0o755)
    (runtime / "lib" / "helper.py").write_text("x = 1\n")
    (runtime / "lib" / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\0cache")
    (runtime / "lib" / "stale.pyc").write_bytes(b"\0cache")
    (runtime / "ca").mkdir()
    (runtime / "ca" / "left-over.crt").write_text("replaced by stage_cas\n")


def make_cas(ca_dir: pathlib.Path) -> None:
    (ca_dir / "corp").mkdir(parents=True)
    (ca_dir / "root.crt").write_text("root\n")
    (ca_dir / "corp" / "inner.crt").write_text("inner\n")
    (ca_dir / "corp" / "inner.crt").chmod(0o600)
    (ca_dir / "readme.txt").write_text("not a certificate\n")


def build_sh_inputs(tree: pathlib.Path, ca_dir: pathlib.Path, context: pathlib.Path) -> str:
    """build_runtime's staging and hash, with build.sh's own functions."""
    functions = subprocess.run(
        ["sed", "-n", "/^hash_tree()/,/^}/p;/^stage_cas()/,/^}/p;/^copy_tree()/,/^}/p", str(ROOT / "images/build.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script = f"""
set -euo pipefail
log() {{ :; }}
EXTRA_CA_DIR="{ca_dir}"
{functions}
copy_tree "{tree}/images/runtime" "{context}"
rm -rf "{context}/ca"
stage_cas "{context}/ca"
{{ echo "parent={PARENT}"; hash_tree "{context}"; }} | sha256sum | cut -d' ' -f1
"""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_the_runtime_inputs_match_build_sh(tmp_path: pathlib.Path) -> None:
    tree, ca_dir = tmp_path / "tree", tmp_path / "cas"
    make_tree(tree)
    make_cas(ca_dir)
    expected = build_sh_inputs(tree, ca_dir, tmp_path / "context")
    assert images.expected_inputs("runtime", PARENT, tree, ca_dir) == expected
    # Any change to an input changes the value; a cache file does not.
    (tree / "images" / "runtime" / "lib" / "__pycache__" / "other.pyc").write_bytes(b"\0")
    assert images.expected_inputs("runtime", PARENT, tree, ca_dir) == expected
    (tree / "images" / "runtime" / "runner.py").chmod(0o644)
    assert images.expected_inputs("runtime", PARENT, tree, ca_dir) != expected
    assert images.expected_inputs("runtime", "sha256:" + "2" * 64, tree, ca_dir) != expected
