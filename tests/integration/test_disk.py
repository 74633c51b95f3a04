"""The workspace's bytes and inodes are bounded by the kernel at every moment
(issue: disk outside any limit). Each attack runs in a real sandbox through
the spawner with the default limits: the program gets ENOSPC, the run ends
OUTPUT_LIMIT naming what ran out, and the host's disk takes no more than the
workspace's cap for it, sampled while the program runs."""

from __future__ import annotations

import os
import pathlib
import secrets
import threading

import docker
import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner import sandbox
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.helpers import execute, request
from tests.loops import loops_backed_under, mounts_under

pytestmark = pytest.mark.integration

MIB = 1024**2
GIB = 1024**3
SAMPLE_SECONDS = 0.02
# What else may land on the host's disk while an attack runs (the engine's
# own files, logs): far below the 5 GiB an attack used to put there.
HOST_NOISE_BYTES = 256 * MIB

FALLOCATE = r"""
import ctypes, errno, os, time
libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE = 1
fd = os.open('/workspace/hole', os.O_WRONLY | os.O_CREAT, 0o600)
result = libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long({length}))
error = ctypes.get_errno()
print(result, errno.errorcode.get(error, error), os.fstat(fd).st_size, os.fstat(fd).st_blocks * 512, flush=True)
time.sleep(0.5)  # the test samples the host while the blocks are held
raise SystemExit(1 if result else 0)
"""

WRITE_FLOOD = r"""
import errno, os, time
block = b'x' * (1024 * 1024)
written, deadline = 0, time.monotonic() + 60
try:
    for index in range({blocks}):
        if index % {blocks_per_file} == 0:  # files under RLIMIT_FSIZE
            flood = open(f'/workspace/flood{{index}}', 'wb', buffering=0)
        written += flood.write(block)
        if time.monotonic() > deadline:
            break
    print('no error', written, flush=True)
except OSError as exc:
    print(errno.errorcode[exc.errno], written, flush=True)
    raise SystemExit(1)
"""

FILE_FLOOD = r"""
import errno, os, time
os.mkdir('/workspace/many')
made, deadline = 0, time.monotonic() + 60
try:
    for made in range({count}):
        os.close(os.open(f'/workspace/many/{{made}}', os.O_WRONLY | os.O_CREAT, 0o600))
        if time.monotonic() > deadline:
            break
    print('no error', made, flush=True)
except OSError as exc:
    print(errno.errorcode[exc.errno], made, flush=True)
    raise SystemExit(1)
"""

# The container's own stdout (PID 1's) is the engine's to keep: a program
# reaches it through /proc/1/fd/1. Written until 64 MiB or a second without
# progress, then held while the test looks at the engine's log file.
CONTAINER_LOG_FLOOD = r"""
import os, select, time
block = b'x' * (1024 * 1024)
written = 0
fd = os.open('/proc/1/fd/1', os.O_WRONLY | os.O_NONBLOCK)
while written < 64 * 1024 * 1024 and select.select([], [fd], [], 1.0)[1]:
    try:
        written += os.write(fd, block)
    except BlockingIOError:
        pass
print(written, flush=True)
time.sleep(1)
"""


class LogSampler(threading.Thread):
    """The largest log file the engine keeps for the execution's container,
    sampled while it runs."""

    def __init__(self, docker_api, execution_id: str):
        super().__init__(daemon=True)
        self._api, self._execution_id = docker_api, execution_id
        self._done = threading.Event()
        self.containers_seen = 0
        self.peak_bytes = 0

    def run(self) -> None:
        label = f"{sandbox.LABEL_EXECUTION}={self._execution_id}"
        while not self._done.wait(SAMPLE_SECONDS):
            for summary in self._api.containers(all=True, filters={"label": label}):
                self.containers_seen += 1
                try:
                    log_path = self._api.inspect_container(summary["Id"])["LogPath"]
                    size = os.stat(log_path).st_size if log_path else 0
                except (docker.errors.NotFound, FileNotFoundError):
                    continue
                self.peak_bytes = max(self.peak_bytes, size)

    def stop(self) -> None:
        self._done.set()
        self.join()


class DiskSampler:
    """Samples, while an execution runs, its image's allocated bytes and how
    much of the host's filesystem (the one holding the workspace root) is
    used."""

    def __init__(self, workspace_root: pathlib.Path, execution_id: str):
        self._root = workspace_root
        self._pattern = f"{execution_id}.*.img"
        self._stop = threading.Event()
        self.host_before = _host_used(workspace_root)
        self.host_peak = self.host_before
        self.image_peak = 0
        self.image_size = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for image in self._root.glob(self._pattern):
                try:
                    info = image.stat()
                except FileNotFoundError:
                    continue
                self.image_size = info.st_size
                self.image_peak = max(self.image_peak, info.st_blocks * 512)
            self.host_peak = max(self.host_peak, _host_used(self._root))


def _host_used(path: pathlib.Path) -> int:
    usage = os.statvfs(path)
    return (usage.f_blocks - usage.f_bfree) * usage.f_frsize


def _attack(stub, spawner_server, workspace_root, code: str):
    cap = spawner_server.spawner.settings.max_workspace_bytes
    req = request({"main.py": code}, timeout_ms=60_000)
    with DiskSampler(pathlib.Path(workspace_root), req.execution_id) as sampler:
        outcome = execute(stub, req)
        assert spawner_server.spawner.provisioner.wait_removed(10)  # removed after the result is sent
    assert sampler.image_size == cap, "the workspace's image was never seen"
    assert sampler.image_peak <= cap
    assert sampler.host_peak - sampler.host_before <= cap + HOST_NOISE_BYTES
    assert loops_backed_under(str(workspace_root)) == [] and mounts_under(str(workspace_root)) == []
    return outcome, sampler


def test_fallocate_of_five_gibibytes_gets_enospc(stub, spawner_server, workspace_root):
    outcome, _ = _attack(stub, spawner_server, workspace_root, FALLOCATE.format(length=5 * GIB))
    result, error, size, allocated = outcome.stdout.decode().split()
    # ENOTSUP on gVisor only: on runc the kernel's own bound must answer.
    assert (error == "ENOTSUP") == (spawner_server.spawner.settings.default_runtime == "gvisor"), outcome.stdout
    if error == "ENOTSUP":
        # gVisor's file proxy offers no fallocate: nothing is allocated, and
        # the program's own failure is the verdict.
        assert (result, size, allocated) == ("-1", "0", "0"), outcome.stdout
        assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR, outcome.result
        return
    assert (result, error, size) == ("-1", "ENOSPC", "0"), outcome.stdout
    assert int(allocated) <= spawner_server.spawner.settings.max_workspace_bytes
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert "the workspace ran out of space" in outcome.result.error_message


def test_a_write_flood_past_the_cap_gets_enospc(stub, spawner_server, workspace_root):
    cap = spawner_server.spawner.settings.max_workspace_bytes
    outcome, sampler = _attack(
        stub, spawner_server, workspace_root, WRITE_FLOOD.format(blocks=2 * cap // MIB, blocks_per_file=16)
    )
    error, written = outcome.stdout.decode().split()
    assert error == "ENOSPC", outcome.stdout
    assert cap // 2 < int(written) <= cap
    assert sampler.image_peak > cap // 2  # the bytes did land in the image, and nowhere else
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert "the workspace ran out of space" in outcome.result.error_message


def test_a_flood_of_the_container_s_own_stdout_reaches_no_disk(stub, spawner_server, docker_api):
    # With the engine's default log driver (json-file, no size cap) it all
    # went into a file on the host's disk, bounded by no limit of the sandbox.
    req = request({"main.py": CONTAINER_LOG_FLOOD}, timeout_ms=60_000)
    sampler = LogSampler(docker_api, req.execution_id)
    sampler.start()
    try:
        outcome = execute(stub, req)
    finally:
        sampler.stop()
    assert outcome.result.exit_code == 0, outcome
    assert int(outcome.stdout.decode()) > 0 and sampler.containers_seen > 0
    assert sampler.peak_bytes < MIB


def test_millions_of_empty_files_stop_at_the_inode_cap(stub, spawner_server, workspace_root):
    inodes = spawner_server.spawner.settings.max_workspace_inodes
    outcome, _ = _attack(stub, spawner_server, workspace_root, FILE_FLOOD.format(count=2_000_000))
    error, made = outcome.stdout.decode().split()
    assert error == "ENOSPC", outcome.stdout
    assert inodes // 2 < int(made) < inodes
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert "the workspace ran out of inodes" in outcome.result.error_message


def test_a_program_that_handles_enospc_completes(stub, spawner_server, workspace_root):
    """A full workspace is only blamed for a failure."""
    code = FALLOCATE.format(length=5 * GIB).replace("raise SystemExit(1 if result else 0)", "")
    outcome, _ = _attack(stub, spawner_server, workspace_root, code)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result


def test_a_failed_start_leaves_no_mount_or_loop_device(docker_api, tmp_path):
    """The workspace was made, mounted and staged, then the container could
    not be created: everything goes."""
    name = f"nostart-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    running = start(make_settings(name, root, python_image="sandbox-mesh/no-such-image:local"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
            outcome = execute(stub, request({"main.py": "print(1)"}))
        assert outcome.result.error_code == common.ERROR_CODE_SPAWNER_UNAVAILABLE, outcome.result
        assert running.spawner.cleanup_failures == 0
    finally:
        running.stop(grace_seconds=1)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
