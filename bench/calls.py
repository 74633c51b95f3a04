"""One timed call of each kind the benchmark compares: an Execute through
control, as a client sees it, and the baseline `docker run --rm`.

Every `docker run` carries the label `sandbox-mesh.bench=<run id>`, so a
container left by a killed CLI can be found and removed (remove_baselines)."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import subprocess
import time

import docker

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb

IMAGE = "sandbox-mesh/runtime:local"
BENCH_LABEL = "sandbox-mesh.bench"
RUN_ID = secrets.token_hex(4)
HELLO = 'print("hello")'
# A request asking for this much memory differs from any spawner's default
# (256 MiB unless configured otherwise), so no warm container fits it: the
# cold path through the same mesh.
COLD_MEMORY_BYTES = 320 * 1024 * 1024


def streaming_program(total_bytes: int, chunk: int = 100_000) -> str:
    """Python writing `total_bytes` (a multiple of `chunk`) to stdout."""
    return (
        f"import sys\nw = sys.stdout.buffer.write\nc = b'x' * {chunk}\n"
        f"for _ in range({total_bytes // chunk}):\n    w(c)\n"
    )


def request(
    source: str,
    *,
    cold: bool = False,
    timeout_ms: int = 20_000,
    packages: tuple[str, ...] = (),
    variant: str = "",
    runtime: str = "",
) -> pb.ExecuteRequest:
    limits = common.Limits(timeout_ms=timeout_ms, memory_bytes=COLD_MEMORY_BYTES if cold else 0)
    fields: dict[str, object] = {}
    if variant:
        fields["variant"] = variant
    if runtime:
        fields["runtime"] = runtime
    return pb.ExecuteRequest(
        execution_id=f"bench-{secrets.token_hex(8)}",
        language=common.LANGUAGE_PYTHON,
        files=[common.File(path="main.py", content=source.encode())],
        entry="main.py",
        limits=limits,
        packages=[common.Package(name=name) for name in packages],
        **fields,  # type: ignore[arg-type]
    )


def has_request_field(name: str) -> bool:
    return name in pb.ExecuteRequest.DESCRIPTOR.fields_by_name


@dataclasses.dataclass
class Timed:
    """Client-clock seconds from sending the request."""

    total: float
    first_stdout: float | None
    last_stdout: float | None
    stdout_bytes: int
    stdout_head: bytes
    execution: pb.Execution | None

    @property
    def ok(self) -> bool:
        return self.execution is not None and self.execution.status == common.EXECUTION_STATUS_COMPLETED

    def describe(self) -> str:
        if self.execution is None:
            return "no finished event"
        return (
            f"{common.ExecutionStatus.Name(self.execution.status)} "
            f"{common.ErrorCode.Name(self.execution.error_code)} {self.execution.error_message!r}"
        )


def execute(stub, req: pb.ExecuteRequest, timeout: float = 120) -> Timed:
    """Sends one Execute and reads the stream to `finished`; keeps only the
    first bytes of stdout (the streaming figure sends tens of MB)."""
    first = last = None
    count, head, finished = 0, b"", None
    started = time.perf_counter()
    for event in stub.Execute(req, timeout=timeout):
        kind = event.WhichOneof("event")
        if kind == "stdout":
            last = time.perf_counter() - started
            if first is None:
                first = last
            count += len(event.stdout.data)
            if len(head) < 64:
                head += event.stdout.data[:64]
        elif kind == "finished":
            finished = event.finished
    return Timed(time.perf_counter() - started, first, last, count, head, finished)


def docker_run(source: str, timeout: float = 120) -> Timed:
    """`docker run --rm --network none IMAGE python3 -c SOURCE`, its stdout
    read through a pipe (to the end, counted, not kept)."""
    argv = ["docker", "run", "--rm", "--network", "none", "--label", f"{BENCH_LABEL}={RUN_ID}"]
    argv += [IMAGE, "python3", "-c", source]
    first = last = None
    count, head = 0, b""
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        while data := process.stdout.read1(1 << 20):  # type: ignore[attr-defined]
            last = time.perf_counter() - started
            if first is None:
                first = last
            count += len(data)
            if len(head) < 64:
                head += data[:64]
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = -1
    total = time.perf_counter() - started
    status = common.EXECUTION_STATUS_COMPLETED if code == 0 else common.EXECUTION_STATUS_FAILED
    return Timed(total, first, last, count, head, pb.Execution(status=status, exit_code=code))


def remove_baselines() -> int:
    """Removes the containers of this run's `docker run`s still there (a CLI
    killed mid-run leaves its container); returns how many."""
    api = docker.APIClient(version="auto")
    try:
        found = api.containers(all=True, filters={"label": [f"{BENCH_LABEL}={RUN_ID}"]})
        for container in found:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(container["Id"], force=True, v=True)
        return len(found)
    finally:
        api.close()
