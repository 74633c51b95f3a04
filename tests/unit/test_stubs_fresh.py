"""The committed gRPC stubs must match what the protos generate today."""

import filecmp
import pathlib

from scripts.gen_protos import generate

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _files(base: pathlib.Path) -> dict[str, pathlib.Path]:
    return {str(p.relative_to(base)): p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_committed_stubs_are_fresh(tmp_path):
    generate(tmp_path)
    fresh, committed = _files(tmp_path), _files(ROOT / "stubs")
    assert sorted(fresh) == sorted(committed), "stub files differ: run `make protos`"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert stale == [], f"stale stubs {stale}: run `make protos`"
