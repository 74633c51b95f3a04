"""The pre-staging bound of artifact runs (pure rules)."""

from services.common.contract.ids import ID_RE
from services.control.config import ControlSettings, PrestageLimits
from services.control.executions.models import StoredFile
from services.control.runs.prestage import judge_prestage
from services.control.runs.service import new_run_id

LIMITS = PrestageLimits(max_bytes=100, max_files=2, max_file_bytes=60)


def _files(*sizes: int) -> list[StoredFile]:
    return [StoredFile(f"f{i}.txt", size, "0" * 64) for i, size in enumerate(sizes)]


def test_within_the_bounds():
    assert judge_prestage([], LIMITS) == ""
    assert judge_prestage(_files(60, 40), LIMITS) == ""


def test_over_each_bound_names_it():
    assert "3 files" in judge_prestage(_files(1, 1, 1), LIMITS)
    assert "101 bytes" in judge_prestage(_files(60, 41), LIMITS)
    assert "'f0.txt' has 61 bytes" in judge_prestage(_files(61), LIMITS)


def test_paths_the_spawner_would_refuse():
    assert "cannot be staged" in judge_prestage([StoredFile(".hidden", 1, "0" * 64)], LIMITS)


def test_defaults_are_the_mesh_request_limits(monkeypatch):
    limits = ControlSettings().prestage_limits()
    assert limits == PrestageLimits()
    assert (limits.max_bytes, limits.max_files, limits.max_file_bytes) == (10 * 1024 * 1024, 100, 1024 * 1024)
    monkeypatch.setenv("MESH_MAX_TOTAL_FILE_BYTES", "5")
    assert ControlSettings().prestage_limits().max_bytes == 5


def test_run_ids_are_valid_execution_ids():
    assert ID_RE.match(new_run_id())
