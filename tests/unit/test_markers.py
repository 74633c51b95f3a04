"""Every integration test carries the `integration` marker: selecting
`not integration` from tests/integration collects nothing."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _collected(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit 5: nothing collected; anything else but 0 is a collection error.
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_no_integration_test_lacks_the_marker():
    assert _collected("-m", "not integration", "tests/integration") == []


def test_the_selection_is_not_empty_by_accident():
    # The same collection without the filter finds the integration tests,
    # so the empty answer above is the marker's doing.
    assert len(_collected("tests/integration/test_lifecycle.py")) >= 5
