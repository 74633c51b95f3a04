"""The interpreter started ahead of the runner (images/runtime/prestart.py), run
locally: every program must behave exactly as when the runner starts it with
Popen: the same exit code, stdout and stderr, byte for byte. The container
side is the spawner's integration suite, whose Python programs all take
this path."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from services.spawner import handoff
from services.spawner.sandbox import STDERR, STDOUT

RUNTIME = pathlib.Path(__file__).resolve().parents[2] / "images" / "runtime"
PYTHON = sys.executable
# Whether the program's module frame was called by the prestart (only
# introspection tells the two apart).
FAST_PATH_PROBE = "import sys; print(sys._getframe().f_back is not None)\n"


def run(tmp_path: pathlib.Path, prestart: bool, argv: list[str], env: dict[str, str], stdin: str | None = None):
    workspace = tmp_path / ("prestarted" if prestart else "plain")
    workspace.mkdir(exist_ok=True)
    socket_path = workspace / handoff.RUNNER_DIR / handoff.SOCKET_NAME
    # The runner's own environment is the prestarted interpreter's: without
    # the test run's PYTHONPATH, as in a sandbox.
    runner_env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    if prestart:
        command = [PYTHON, str(RUNTIME / "prestart.py"), str(socket_path)]
    else:
        command = [PYTHON, str(RUNTIME / "runner.py"), "serve", str(socket_path)]
    runner = subprocess.Popen(command, env=runner_env)
    try:
        connection = handoff.connect(workspace, 10, lambda: runner.poll() is None)
        try:
            program = connection.start(argv, env, str(tmp_path / "code"), stdin)
            chunks = list(program.stream())
            code = program.exit_code()
        finally:
            connection.close()
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=10) == 0
    stdout = b"".join(data for kind, data in chunks if kind == STDOUT)
    stderr = b"".join(data for kind, data in chunks if kind == STDERR)
    return code, stdout, stderr


@pytest.fixture
def code(tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "SANDBOX_UID", os.getuid())
    folder = tmp_path / "code"
    folder.mkdir()
    return folder


def same_both_ways(tmp_path, argv, env=None, stdin=None):
    plain = run(tmp_path, False, argv, env or {}, stdin)
    prestarted = run(tmp_path, True, argv, env or {}, stdin)
    assert prestarted == plain
    return plain


PROGRAMS = {
    "globals_argv_path_env_cwd_stdin": (
        "import os, sys\n"
        "print(sorted((k, type(v).__name__ if k in ('__builtins__', '__loader__') else v)"
        " for k, v in globals().items() if k not in ('os', 'sys')))\n"
        "print(sys.argv, sys.orig_argv[1:], sys.path[0], __loader__.name, __loader__.path)\n"
        "print(os.getcwd(), os.environ['X'], os.getenv('X'), sys.stdin.read(), sys.flags)\n"
        "print(sys.modules['__main__'] is sys.modules[__name__], '_prestart' in sys.modules)\n"
    ),
    "uncaught_chained_exception": (
        "def inner():\n    raise KeyError('k')\n"
        "try:\n    inner()\nexcept KeyError as e:\n    raise ValueError('v') from e\n"
    ),
    "exit_with_message": "import sys\nprint('out')\nsys.exit('bye')\n",
    "exit_with_code": "raise SystemExit(3)\n",
    "keyboard_interrupt": "raise KeyboardInterrupt\n",
    "syntax_error": "print('never'\n",
    "killed_by_signal": "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "atexit_and_threads_at_exit": (
        "import atexit, threading, time\n"
        "atexit.register(print, 'atexit ran')\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
        "raise RuntimeError('main failed')\n"
    ),
    "stdout_and_stderr_interleaved": "import sys\nfor i in range(3):\n    print(i)\n    print(-i, file=sys.stderr)\n",
    "bom_and_coding_cookie": "\ufeff# -*- coding: utf-8 -*-\nprint('caf\u00e9')\n",
    # Nothing the runner imports or opens after the fork reaches the program.
    "modules_and_descriptors": (
        "import os, sys\nprint(sorted(sys.modules))\nprint(sorted(os.listdir('/proc/self/fd')))\n"
    ),
    "signals_of_a_child": "import subprocess\nsubprocess.run(['sh', '-c', 'grep SigIgn /proc/$$/status'])\n",
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_program_behaves_the_same_prestarted(tmp_path, code, name):
    (code / "main.py").write_text(PROGRAMS[name], encoding="utf-8")
    (tmp_path / "stdin").write_bytes(b"from stdin")
    same_both_ways(tmp_path, [PYTHON, "main.py", "an arg"], {"X": "y"}, str(tmp_path / "stdin"))


def test_the_first_python_program_runs_in_the_prestarted_interpreter(tmp_path, code):
    (code / "main.py").write_text(FAST_PATH_PROBE)
    assert run(tmp_path, True, [PYTHON, "main.py"], {})[1] == b"True\n"
    assert run(tmp_path, False, [PYTHON, "main.py"], {})[1] == b"False\n"


def test_a_module_of_the_program_shadows_the_standard_library_as_usual(tmp_path, code):
    (code / "json.py").write_text("MINE = True\n")
    (code / "main.py").write_text("import json\nprint(json.MINE)\n")
    assert same_both_ways(tmp_path, [PYTHON, "main.py"])[1] == b"True\n"


def test_pythonpath_of_the_request_is_on_sys_path(tmp_path, code):
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "installed.py").write_text("NAME = 'installed'\n")
    (code / "main.py").write_text(FAST_PATH_PROBE + "import installed, sys\nprint(installed.NAME, sys.path[1])\n")
    plain = run(tmp_path, False, [PYTHON, "main.py"], {"PYTHONPATH": str(packages)})
    prestarted = run(tmp_path, True, [PYTHON, "main.py"], {"PYTHONPATH": str(packages)})
    assert prestarted[1] == plain[1].replace(b"False", b"True", 1)
    assert plain[1].endswith(f"installed {packages}\n".encode())


@pytest.mark.parametrize(
    "argv_tail, env",
    [
        (["main.py"], {"PYTHONHASHSEED": "7"}),  # read at start-up: a fresh interpreter
        (["main.py"], {"LC_ALL": "C"}),
        (["-c", FAST_PATH_PROBE], {}),
        (["-B", "main.py"], {}),
        (["absent.py"], {}),
        (["."], {}),  # a directory: run by its __main__.py
    ],
)
def test_what_it_cannot_reproduce_runs_in_a_fresh_interpreter(tmp_path, code, argv_tail, env):
    seeded_hash = "import os\nif 'PYTHONHASHSEED' in os.environ:\n    print(hash('a'))\n"
    (code / "main.py").write_text(FAST_PATH_PROBE + seeded_hash)
    (code / "__main__.py").write_text("print('the folder ran')\n")
    result = same_both_ways(tmp_path, [PYTHON, *argv_tail], env)
    assert b"True" not in result[1]


def test_other_programs_are_executed_as_by_popen(tmp_path, code):
    same_both_ways(tmp_path, ["sh", "-c", "echo $X; grep SigIgn /proc/$$/status; exit 5"], {"X": "y"})
    same_both_ways(tmp_path, ["no-such-program"], {})


def test_a_missing_stdin_file_is_reported_as_by_popen(tmp_path, code):
    plain = run(tmp_path, False, [PYTHON, "main.py"], {}, str(tmp_path / "absent"))
    assert run(tmp_path, True, [PYTHON, "main.py"], {}, str(tmp_path / "absent")) == plain
    assert plain[0] == 127
