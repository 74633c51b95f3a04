"""The runner hand-off on the real engine: a hardened container (the
spawner's own host config) whose PID 1 is the worktree's runner in `serve`
mode, driven through services.spawner.handoff, compared with `docker exec`
where the two must agree."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import tempfile
import time

import docker
import pytest

from services.spawner import handoff, sandbox
from services.spawner.handoff import HandoffError, RunnerConnection, RunnerProgram
from services.spawner.sandbox import NO_EXIT_CODE, SANDBOX_UID, STDERR, STDOUT
from tests.integration.conftest import make_settings
from tests.integration.runner_image import ROLE, runner_test_image

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CODE = f"{sandbox.WORKSPACE}/code"
CONNECT_SECONDS = 10


class Sandboxes:
    """Containers made by this module, each with its own workspace."""

    def __init__(self, api: docker.APIClient, image: str, root: pathlib.Path):
        self.api = api
        self.image = image
        self.root = root
        self.ids: list[str] = []

    def workspace(self) -> pathlib.Path:
        path = pathlib.Path(tempfile.mkdtemp(dir=self.root, prefix="ws-"))
        (path / "code").mkdir()
        for item in (path, path / "code"):
            os.chown(item, SANDBOX_UID, SANDBOX_UID)
        return path

    def start(self, workspace: pathlib.Path) -> str:
        settings = make_settings("handoff-test", self.root)
        created = self.api.create_container(
            self.image,
            command=handoff.runner_command("python"),
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            working_dir=CODE,
            labels={sandbox.LABEL_ROLE: ROLE},
            host_config=sandbox.host_config(
                self.api,
                settings,
                workspace=str(workspace),
                limits=sandbox.ContainerLimits(memory_bytes=512 * MIB, cpus=1.0),
                cgroup_parent="",
                network=None,
            ),
            network_disabled=True,
            stop_signal="SIGKILL",
        )
        self.ids.append(created["Id"])
        self.api.start(created["Id"])
        return created["Id"]

    def alive(self, container_id: str):
        return lambda: bool(self.api.inspect_container(container_id)["State"]["Running"])

    def connect(self, container_id: str, workspace: pathlib.Path, timeout: float = CONNECT_SECONDS):
        return handoff.connect(workspace, timeout, self.alive(container_id))

    def new(self) -> tuple[str, RunnerConnection, pathlib.Path]:
        workspace = self.workspace()
        container_id = self.start(workspace)
        return container_id, self.connect(container_id, workspace), workspace

    def remove_all(self) -> None:
        for container_id in self.ids:
            try:
                self.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass


@pytest.fixture(scope="module")
def sandboxes(docker_api):
    root = pathlib.Path(tempfile.mkdtemp(prefix="handoff-"))
    with runner_test_image(docker_api) as image:
        made = Sandboxes(docker_api, image, root)
        try:
            yield made
        finally:
            made.remove_all()
            shutil.rmtree(root)
    left = docker_api.containers(all=True, filters={"label": f"{sandbox.LABEL_ROLE}={ROLE}"})
    assert [c["Id"] for c in left if c["Id"] in made.ids] == []


@pytest.fixture(scope="module")
def shared(sandboxes):
    """One container and connection for the well-behaved programs, run one
    after another as the spawner would."""
    container_id, connection, workspace = sandboxes.new()
    yield container_id, connection, workspace
    connection.close()


@pytest.fixture
def fresh(sandboxes):
    """A container of the test's own, for programs that break things."""
    container_id, connection, workspace = sandboxes.new()
    yield container_id, connection, workspace
    connection.close()


def run(
    connection: RunnerConnection, argv: list[str], env: dict[str, str] | None = None, cwd: str = CODE, stdin=None
) -> tuple[RunnerProgram, list[tuple[int, bytes]]]:
    program = connection.start(argv, env or {}, cwd, stdin)
    return program, list(program.stream())


def joined(chunks: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for kind, data in chunks if kind == stream)


def merged(chunks: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Consecutive chunks of one stream as one: with PYTHONUNBUFFERED (the
    image's) print() writes its text and its newline separately."""
    result: list[tuple[int, bytes]] = []
    for kind, data in chunks:
        if result and result[-1][0] == kind:
            result[-1] = (kind, result[-1][1] + data)
        else:
            result.append((kind, data))
    return result


def python(source: str) -> list[str]:
    return ["python3", "-c", source]


def docker_exec(api: docker.APIClient, container_id: str, argv: list[str]) -> tuple[int, bytes, bytes]:
    handle = sandbox.SandboxContainer(api, container_id).exec(argv, {})
    chunks = list(handle.stream())
    return handle.exit_code(), joined(chunks, STDOUT), joined(chunks, STDERR)


def test_hello(shared):
    _, connection, _ = shared
    program, chunks = run(connection, python("print('hello')"))
    assert merged(chunks) == [(STDOUT, b"hello\n")]
    assert program.exit_code() == 0
    assert program.violation is None


def test_stdout_and_stderr_arrive_interleaved_and_live(shared):
    _, connection, _ = shared
    source = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(f'o{i}', flush=True); time.sleep(0.05)\n"
        "    print(f'e{i}', file=sys.stderr, flush=True); time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
    )
    program = connection.start(python(source), {}, CODE, None)
    arrivals = [(kind, data, time.monotonic()) for kind, data in program.stream()]
    expected = [(STDOUT if n % 2 == 0 else STDERR, f"{'oe'[n % 2]}{n // 2}\n".encode()) for n in range(6)]
    assert merged([(kind, data) for kind, data, _ in arrivals]) == expected
    assert program.finished_at - arrivals[-1][2] > 0.4  # the last line came before the program ended
    assert program.exit_code() == 0


@pytest.mark.parametrize("code", [0, 3])
def test_exit_codes(shared, code):
    _, connection, _ = shared
    program, _ = run(connection, python(f"import sys; sys.exit({code})"))
    assert program.exit_code() == code


@pytest.mark.parametrize("signum", [9, 15])
def test_a_program_killed_by_a_signal_reports_what_docker_exec_reports(docker_api, shared, signum):
    container_id, connection, _ = shared
    argv = python(f"import os; os.kill(os.getpid(), {signum})")
    program, _ = run(connection, argv)
    exec_code, _, _ = docker_exec(docker_api, container_id, argv)
    assert program.exit_code() == exec_code == 128 + signum


def test_programs_that_cannot_start_report_as_a_shell_would(shared):
    _, connection, _ = shared
    program, chunks = run(connection, ["no-such-program"])
    assert program.exit_code() == 127
    assert b"no-such-program" in joined(chunks, STDERR)
    program, _ = run(connection, ["/etc/passwd"])
    assert program.exit_code() == 126
    program, chunks = run(connection, ["true"], cwd="/workspace/missing")
    assert program.exit_code() == 127
    assert b"/workspace/missing" in joined(chunks, STDERR)


def test_stdin_from_a_file_and_null_stdin(shared):
    _, connection, workspace = shared
    (workspace / "stdin").write_bytes(b"line one\nline two\n")
    program, chunks = run(connection, python("import sys; print(sys.stdin.read().upper())"), stdin="/workspace/stdin")
    assert joined(chunks, STDOUT) == b"LINE ONE\nLINE TWO\n\n"
    program, chunks = run(connection, python("import sys; print(repr(sys.stdin.read()))"))
    assert joined(chunks, STDOUT) == b"''\n"
    assert program.exit_code() == 0


def test_env_is_laid_over_the_containers_and_cwd_is_honoured(shared):
    _, connection, workspace = shared
    (workspace / "code" / "sub").mkdir(exist_ok=True)
    source = "import os; print(os.environ['GREETING'], os.environ['HOME'], os.environ['LANG'], os.getcwd(), sep='|')"
    environment = {"GREETING": "hi there", "LANG": "C.UTF-8"}
    program, chunks = run(connection, python(source), env=environment, cwd=f"{CODE}/sub")
    assert joined(chunks, STDOUT) == f"hi there|/tmp|C.UTF-8|{CODE}/sub\n".encode()
    assert program.exit_code() == 0


def test_arguments_with_spaces_and_unicode_pass_unchanged(shared):
    _, connection, _ = shared
    args = ["a b", "  ", "ünï €", "", "--x=\"'$HOME'\"", "日本語"]
    program, chunks = run(connection, [*python("import sys; print(repr(sys.argv[1:]))"), *args])
    assert joined(chunks, STDOUT).decode() == repr(args) + "\n"
    assert program.exit_code() == 0


def test_several_programs_in_sequence_on_one_connection(shared):
    _, connection, _ = shared
    for number in range(10):
        program, chunks = run(connection, python(f"print({number}); raise SystemExit({number})"))
        assert joined(chunks, STDOUT) == f"{number}\n".encode()  # PYTHONUNBUFFERED: print writes twice
        assert program.exit_code() == number


def test_a_large_output_streams_fast(shared):
    _, connection, _ = shared
    blocks = 800  # 800 x 64 KiB = 50 MiB
    source = f"import sys\nb = b'x' * 65536\nfor _ in range({blocks}): sys.stdout.buffer.write(b)\n"
    began = time.monotonic()
    program = connection.start(python(source), {}, CODE, None)
    received = 0
    for kind, data in program.stream():
        assert kind == STDOUT
        received += len(data)
    seconds = program.finished_at - began  # the interpreter's start-up included
    rate = received / MIB / seconds
    print(f"\nhand-off: {received / MIB:.0f} MiB in {seconds:.3f}s = {rate:.0f} MiB/s")
    assert received == blocks * 65536
    assert program.exit_code() == 0
    assert rate > 40


def test_a_slow_reader_holds_the_program_back_without_the_runner_buffering(docker_api, shared):
    container_id, connection, _ = shared
    source = "import sys\nb = b'y' * 65536\nfor _ in range(320): sys.stdout.buffer.write(b)\n"
    program = connection.start(python(source), {}, CODE, None)
    stream = program.stream()
    received = len(next(stream)[1])
    time.sleep(1.0)  # the program has long written all it could: pipe and socket are full
    _, status, _ = docker_exec(docker_api, container_id, ["cat", "/proc/1/status"])
    runner_rss_kib = int(next(line for line in status.decode().splitlines() if line.startswith("VmRSS")).split()[1])
    received += sum(len(data) for _, data in stream)
    assert received == 320 * 65536
    assert program.exit_code() == 0
    assert runner_rss_kib < 40 * 1024, f"the runner holds {runner_rss_kib} KiB while the reader is slow"


def test_a_background_child_holding_stdout_does_not_delay_the_exit(shared):
    _, connection, _ = shared
    program, chunks = run(connection, ["sh", "-c", "(sleep 5; echo late) & echo early; exit 4"])
    assert program.finished_at - program.started_at < 1
    assert chunks == [(STDOUT, b"early\n")]
    assert program.exit_code() == 4
    # the background process lives on, as after a docker exec
    program, chunks = run(connection, ["sh", "-c", "grep -l sleep /proc/[0-9]*/cmdline | wc -l"])
    assert int(joined(chunks, STDOUT)) >= 1


def test_the_container_killed_mid_program_ends_the_stream_without_an_exit_code(docker_api, fresh):
    container_id, connection, _ = fresh
    program = connection.start(python("import sys, time; sys.stdout.write('go\\n'); time.sleep(60)"), {}, CODE, None)
    stream = program.stream()
    assert next(stream) == (STDOUT, b"go\n")
    docker_api.kill(container_id)
    assert list(stream) == []
    assert program.finished_at - program.started_at < 5
    assert program.exit_code() == NO_EXIT_CODE
    assert program.violation is None
    with pytest.raises(HandoffError):
        connection.start(["true"], {}, CODE, None)


def test_the_code_killing_the_runner_ends_the_stream_without_an_exit_code(fresh):
    _, connection, _ = fresh
    program, _ = run(connection, ["sh", "-c", "kill -TERM 1; sleep 60"])
    assert program.finished_at - program.started_at < 5
    assert program.exit_code() == NO_EXIT_CODE
    assert program.violation is None


def test_nothing_can_connect_after_the_spawner(sandboxes, fresh):
    container_id, connection, workspace = fresh
    run(connection, ["true"])  # the runner has accepted, and removed its socket, by now
    assert list((workspace / handoff.RUNNER_DIR).iterdir()) == []
    assert (workspace / handoff.RUNNER_DIR).stat().st_mode & 0o777 == 0o700
    with pytest.raises(HandoffError, match="did not listen"):
        sandboxes.connect(container_id, workspace, timeout=0.5)
    source = (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try: s.connect('/workspace/.runner/runner.sock')\n"
        "except OSError as e: print(type(e).__name__)\n"
    )
    program, chunks = run(connection, python(source))
    assert joined(chunks, STDOUT) == b"FileNotFoundError\n"
    assert program.exit_code() == 0


def test_a_symlink_in_place_of_the_runner_directory_is_never_followed(sandboxes, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(elsewhere / handoff.SOCKET_NAME))
    listener.listen(1)
    listener.settimeout(0.2)
    workspace = sandboxes.workspace()
    (workspace / handoff.RUNNER_DIR).symlink_to(elsewhere)
    container_id = sandboxes.start(workspace)
    with pytest.raises(HandoffError, match="not a directory"):
        sandboxes.connect(container_id, workspace)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert os.listdir(elsewhere) == [handoff.SOCKET_NAME]


def test_orphans_are_reaped_and_the_programs_status_is_kept(docker_api, fresh):
    container_id, connection, _ = fresh
    source = (
        "import os, sys, time\n"
        "for _ in range(400):\n"
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(0.001)\n"
        "        os._exit(0)\n"
        "    os.waitpid(child, 0)\n"
        "sys.exit(5)\n"
    )
    for _ in range(3):
        program, chunks = run(connection, python(source))
        assert program.exit_code() == 5, chunks
    time.sleep(0.3)
    count_zombies = "grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat | wc -l"
    program, chunks = run(connection, ["sh", "-c", count_zombies])
    assert int(joined(chunks, STDOUT)) == 0
    exec_code, out, _ = docker_exec(docker_api, container_id, ["sh", "-c", count_zombies])
    assert (exec_code, int(out)) == (0, 0)
