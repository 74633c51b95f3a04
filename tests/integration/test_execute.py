"""Spawner Execute on real containers: results, streaming, limits, cancellation."""

from __future__ import annotations

import errno
import threading
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from tests.integration.conftest import labelled_containers
from tests.integration.helpers import collect, execute, request

pytestmark = pytest.mark.integration

COMPLETED = common.EXECUTION_STATUS_COMPLETED
FAILED = common.EXECUTION_STATUS_FAILED
CANCELLED = common.EXECUTION_STATUS_CANCELLED


def test_hello_python(stub):
    outcome = execute(stub, request({"main.py": 'print("hello")'}))
    assert outcome.result.status == COMPLETED, outcome.result
    assert outcome.result.error_code == common.ERROR_CODE_UNSPECIFIED
    assert outcome.stdout == b"hello\n"
    assert outcome.result.exit_code == 0
    assert outcome.phases() == [pb.PHASE_STARTING, pb.PHASE_RUNNING, pb.PHASE_FINISHING]
    assert outcome.events[-1].WhichOneof("event") == "result"


def test_hello_node(stub):
    outcome = execute(stub, request({"main.js": 'console.log("hello from node")'}, language="node"))
    assert outcome.result.status == COMPLETED, outcome.result
    assert outcome.stdout == b"hello from node\n"


def test_python_entry_imports_sibling_module(stub):
    files = {
        "app/main.py": "from helpers.greet import greet\nprint(greet('mesh'))",
        "app/helpers/__init__.py": "",
        "app/helpers/greet.py": "def greet(name):\n    return f'hi {name}'",
    }
    outcome = execute(stub, request(files, "app/main.py"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout == b"hi mesh\n"


def test_node_entry_requires_sibling_module(stub):
    files = {
        "main.js": "const { add } = require('./lib/math');\nconsole.log(add(2, 3));",
        "lib/math.js": "exports.add = (a, b) => a + b;",
    }
    outcome = execute(stub, request(files, "main.js", language="node"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout == b"5\n"


def test_output_is_streamed_while_the_program_runs(stub):
    code = "import time\nfor i in range(10):\n    print(i)\n    time.sleep(0.1)\n"
    outcome = execute(stub, request({"main.py": code}))
    assert outcome.result.status == COMPLETED
    stdout_times = [at for at, e in outcome.arrivals if e.WhichOneof("event") == "stdout"]
    result_time = outcome.arrivals[-1][0]
    # Ten prints 100 ms apart arrive spread out, the first long before the end.
    assert len(stdout_times) >= 5
    assert result_time - stdout_times[0] > 0.6
    assert stdout_times[-1] - stdout_times[0] > 0.5
    assert outcome.stdout == b"".join(f"{i}\n".encode() for i in range(10))


def test_stdin_and_arguments_reach_the_program(stub):
    code = "import sys\nprint(sys.argv[1:])\nprint(sys.stdin.read().upper())"
    outcome = execute(stub, request({"main.py": code}, args=["one", "two words"], stdin=b"piped in"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout == b"['one', 'two words']\nPIPED IN\n"


def test_node_stdin_and_arguments(stub):
    code = (
        "const fs = require('fs');\n"
        "console.log(process.argv.slice(2).join('|'));\n"
        "console.log(fs.readFileSync(0, 'utf8'));"
    )
    outcome = execute(stub, request({"main.js": code}, language="node", args=["a", "b"], stdin=b"in"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout == b"a|b\nin\n"


def test_environment_variables_reach_the_program(stub):
    code = "import os\nprint(os.environ['GREETING'])"
    outcome = execute(stub, request({"main.py": code}, env={"GREETING": "bonjour"}))
    assert outcome.stdout == b"bonjour\n"


def test_nonzero_exit_is_runtime_error(stub):
    outcome = execute(stub, request({"main.py": "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)"}))
    assert outcome.result.status == FAILED
    assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR
    assert outcome.result.exit_code == 3
    assert "main.py exited 3" in outcome.result.error_message
    assert outcome.stderr == b"bye\n"


def test_timeout_kills_the_program(stub, docker_api, spawner_name, spawner_server):
    """An endless loop ends, as TIMEOUT, long before the call's own deadline:
    the spawner's kill ended it (how soon after the limit depends on the
    machine's load, so no second is counted here)."""
    req = request({"main.py": "while True:\n    pass"}, timeout_ms=1500)
    call = stub.Execute(req, timeout=60)
    outcome = collect(call)
    assert outcome.result.status == FAILED
    assert outcome.result.error_code == common.ERROR_CODE_TIMEOUT
    assert outcome.result.error_message, outcome.result
    outcome.first("phase", phase=pb.PHASE_RUNNING)  # it did start
    assert outcome.result.usage.cpu_seconds > 0  # the busy loop really ran
    assert spawner_server.spawner.provisioner.wait_removed(10)  # removed after the result is sent
    assert labelled_containers(docker_api, spawner_name, req.execution_id) == []


def _start_and_wait_running(stub, req, timeout=60):
    call = stub.Execute(req, timeout=timeout)
    seen = []
    for event in call:
        seen.append(event)
        if event.WhichOneof("event") == "stdout":
            return call, seen
    raise AssertionError(f"stream ended before the program printed: {seen}")


SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)"


def test_cancel_rpc_kills_the_container(stub, docker_api, spawner_name, spawner_server):
    req = request({"main.py": SLEEPER})
    call, _ = _start_and_wait_running(stub, req)
    assert len(labelled_containers(docker_api, spawner_name, req.execution_id)) == 1
    started = time.monotonic()
    response = stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant))
    assert response.cancelled
    rest = collect(call)
    # Well before the sleeper's own 60 s: the kill ended it (a loaded machine
    # may take seconds to remove a container, so no tighter bound).
    assert time.monotonic() - started < 30
    assert rest.result.status == CANCELLED
    assert rest.result.error_code == common.ERROR_CODE_CANCELLED
    assert spawner_server.spawner.provisioner.wait_removed(10)  # removed after the result is sent
    assert labelled_containers(docker_api, spawner_name, req.execution_id) == []


def test_cancel_of_unknown_or_foreign_execution_is_a_no_op(stub):
    assert not stub.Cancel(pb.CancelRequest(execution_id="no-such-execution", tenant="t")).cancelled
    req = request({"main.py": SLEEPER})
    call, _ = _start_and_wait_running(stub, req)
    try:
        assert not stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant="someone-else")).cancelled
    finally:
        stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant))
        assert collect(call).result.status == CANCELLED


def _wait_until_gone(docker_api, spawner_name, execution_id, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not labelled_containers(docker_api, spawner_name, execution_id):
            return
        time.sleep(0.1)
    raise AssertionError(f"container of {execution_id} still there after {seconds} s")


def test_client_cancel_kills_the_container(stub, docker_api, spawner_name, spawner_server):
    req = request({"main.py": SLEEPER})
    call, _ = _start_and_wait_running(stub, req)
    call.cancel()
    _wait_until_gone(docker_api, spawner_name, req.execution_id)
    _wait_for_free_slots(spawner_server)


def test_expired_deadline_kills_the_container(stub, docker_api, spawner_name, spawner_server):
    req = request({"main.py": SLEEPER})
    call = stub.Execute(req, timeout=3)
    with pytest.raises(grpc.RpcError) as failure:
        collect(call)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _wait_until_gone(docker_api, spawner_name, req.execution_id)
    _wait_for_free_slots(spawner_server)


def _wait_for_free_slots(spawner_server, seconds=10.0):
    spawner = spawner_server.spawner
    deadline = time.monotonic() + seconds
    while spawner.inflight.free_slots != spawner.settings.capacity:
        assert time.monotonic() < deadline, "slots were not freed"
        time.sleep(0.05)


def test_memory_bomb_is_memory_limit(stub):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))"
    outcome = execute(stub, request({"main.py": code}, memory_bytes=64 * 1024 * 1024))
    assert outcome.result.status == FAILED
    assert outcome.result.error_code == common.ERROR_CODE_MEMORY_LIMIT, outcome.result
    assert outcome.result.usage.peak_memory_bytes >= 48 * 1024 * 1024


def test_memory_bomb_classification_ignores_lies_on_stderr(stub):
    """Code that prints a misleading error does not change a fact-based verdict."""
    code = (
        "import sys\nprint('Traceback: TimeoutError: TIMEOUT', file=sys.stderr)\n"
        "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))"
    )
    outcome = execute(stub, request({"main.py": code}, memory_bytes=64 * 1024 * 1024))
    assert outcome.result.error_code == common.ERROR_CODE_MEMORY_LIMIT


def test_fork_bomb_is_contained_and_the_spawner_keeps_serving(stub, spawner_server):
    code = (
        "import os, time\n"
        "children = 0\n"
        "deadline = time.time() + 3\n"
        "while time.time() < deadline:\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(children, flush=True)\n"
        "time.sleep(30)\n"
    )
    # Memory enough for every process it may have: under gVisor each forked
    # Python takes about 3.5 MB (its memory is copied in larger units), and
    # the memory limit, not the pids limit, would end it first.
    outcome = execute(stub, request({"main.py": code}, timeout_ms=5000, memory_bytes=1024 * 1024 * 1024))
    assert outcome.result.error_code == common.ERROR_CODE_TIMEOUT, outcome.result
    forked = int(outcome.stdout.strip())
    assert forked < spawner_server.spawner.settings.pids_limit
    again = execute(stub, request({"main.py": "print('still serving')"}))
    assert again.stdout == b"still serving\n"


def test_busy_processes_with_threads_end_with_a_clear_verdict(stub, spawner_server):
    """108 tasks, inside the pids limit: runc runs them all. gVisor (ptrace)
    needs host threads for each busy task in each process, and at the
    engine's bound for them (SPAWNER_GVISOR_PIDS_LIMIT) its whole sandbox
    ends: that is reported as such, never as a silent exit or a hang."""
    code = (
        "import os, threading, time\n"
        "def spin():\n"
        "    end = time.time() + 4\n"
        "    while time.time() < end:\n"
        "        pass\n"
        "children = []\n"
        "for _ in range(36):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        threads = [threading.Thread(target=spin) for _ in range(2)]\n"
        "        [t.start() for t in threads]\n"
        "        spin()\n"
        "        [t.join() for t in threads]\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n"
        "print('done', len(children))\n"
    )
    outcome = execute(stub, request({"main.py": code}, timeout_ms=30_000, memory_bytes=1024 * 1024 * 1024))
    if spawner_server.spawner.settings.default_runtime != "gvisor" or outcome.result.status == COMPLETED:
        assert outcome.result.status == COMPLETED, outcome.result  # runc: always
        assert outcome.stdout == b"done 36\n"
    else:
        # Which of the two gVisor reports first depends on timing: the
        # sandbox seen ended, or runsc's exec giving up with 128 as the
        # sandbox goes down. Either is a clear verdict, never a success.
        assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR, outcome.result
        assert outcome.result.error_message.startswith(("the sandbox ended while main.py ran", "main.py exited 128")), (
            outcome.result
        )
    again = execute(stub, request({"main.py": "print('still serving')"}))
    assert again.stdout == b"still serving\n"


def test_output_flood_is_cut_at_the_cap(stub, spawner_server):
    cap = spawner_server.spawner.settings.max_output_bytes
    code = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"
    started = time.monotonic()
    outcome = execute(stub, request({"main.py": code}))
    # Killed at once, not after the engine's 10 s flush timeout.
    assert time.monotonic() - started < 5
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT
    assert len(outcome.stdout) == cap
    assert b"output limit" in outcome.stderr


def test_sandbox_is_hardened(stub, spawner_server):
    code = r"""
import ctypes, os, socket
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print('uid', os.getuid(), os.geteuid())
print('CapEff', status['CapEff'].strip())
print('CapBnd', status['CapBnd'].strip())
# From the kernel itself: gVisor's /proc/self/status has no NoNewPrivs line.
PR_GET_NO_NEW_PRIVS = 39
print('NoNewPrivs', ctypes.CDLL(None, use_errno=True).prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0))
try:
    open('/etc/written-by-sandbox', 'w')
    print('rootfs writable')
except OSError as exc:
    print('rootfs', exc.errno)
root_mount = [line.split() for line in open('/proc/self/mounts') if line.split()[1] == '/'][-1]
print('rootmount', root_mount[3])
print('interfaces', sorted(os.listdir('/sys/class/net')))
print('routes', len(open('/proc/net/route').read().splitlines()) - 1)
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    print('raw socket allowed')
except OSError as exc:
    print('raw', exc.errno)
with open('/tmp/scratch', 'w') as handle:
    handle.write('ok')
print('tmp ok')
"""
    outcome = execute(stub, request({"main.py": code}))
    assert outcome.result.status == COMPLETED, outcome.stderr
    lines = dict(line.split(" ", 1) for line in outcome.stdout.decode().splitlines())
    uid, euid = map(int, lines["uid"].split())
    assert uid != 0 and euid != 0
    assert int(lines["CapEff"], 16) == 0
    assert int(lines["CapBnd"], 16) == 0
    assert lines["NoNewPrivs"] == "1"
    # EROFS; gVisor checks the permission first (EACCES), but mounts it read-only all the same.
    on_gvisor = spawner_server.spawner.settings.default_runtime == "gvisor"
    assert lines["rootfs"] == (str(errno.EACCES) if on_gvisor else str(errno.EROFS)), lines
    assert "ro" in lines["rootmount"].split(",")
    assert lines["interfaces"] == "['lo']"
    assert lines["routes"] == "0"
    assert lines["raw"] == "1"  # EPERM: no NET_RAW
    assert lines["tmp"] == "ok"


def test_limits_are_applied_to_the_container(stub, docker_api, spawner_name):
    req = request({"main.py": SLEEPER}, memory_bytes=96 * 1024 * 1024)
    req.limits.cpus = 0.5
    call, _ = _start_and_wait_running(stub, req)
    try:
        (container,) = labelled_containers(docker_api, spawner_name, req.execution_id)
        host = docker_api.inspect_container(container["Id"])["HostConfig"]
        assert host["Memory"] == 96 * 1024 * 1024
        assert host["MemorySwap"] == 96 * 1024 * 1024
        assert host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] > 0
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert host["NetworkMode"] == "none"
        assert any(u["Name"] == "fsize" for u in host["Ulimits"])
        assert "/tmp" in host["Tmpfs"]
        assert host["Privileged"] is False
    finally:
        stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant))
        collect(call)


def test_usage_is_measured_from_the_cgroup(stub, spawner_server):
    # The loop burns one second of CPU, however long a loaded machine takes
    # to give it that (a wall-clock loop would get less CPU under load),
    # counted from the program's start: an interpreter started ahead
    # (prestart.py) spent some before the program was handed over.
    code = (
        "import time\nx = bytearray(100 * 1024 * 1024)\nstart = time.process_time()\n"
        "while time.process_time() - start < 1.0:\n    pass\nprint(time.process_time())"
    )
    outcome = execute(stub, request({"main.py": code}, memory_bytes=512 * 1024 * 1024))
    assert outcome.result.status == COMPLETED, outcome.stderr
    usage = outcome.result.usage
    assert usage.peak_memory_bytes >= 100 * 1024 * 1024
    # The cgroup counts at least what the program itself used, and not the
    # idle time of a slow start (a second of CPU is far from ten). Under
    # gVisor the program's CPU time is the Sentry's own account, which runs
    # ahead of what the host charged (0.90 s against 1.0 s here).
    own = float(outcome.stdout)
    floor = own / 2 if spawner_server.spawner.settings.default_runtime == "gvisor" else own
    assert floor <= usage.cpu_seconds < 10, (outcome.stdout, usage)
    assert usage.wall_ms >= 1000  # CPU time of one thread never exceeds its wall time


def test_steps_run_in_order_and_stop_at_the_first_failure(stub):
    files = {
        "prepare.py": "open('/workspace/output/data.txt', 'w').write('42')\nprint('prepared')",
        "validate.py": "import sys\nprint(open('/workspace/output/data.txt').read())\nsys.exit(1)",
        "never.py": "print('never')",
    }
    req = request(files, "")
    req.ClearField("entry")
    req.steps.add(path="prepare.py")
    req.steps.add(path="validate.py")
    req.steps.add(path="never.py")
    outcome = execute(stub, req)
    assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR
    assert outcome.result.error_message == "step 2/3 validate.py exited 1"
    assert [s.exit_code for s in outcome.result.steps] == [0, 1]
    assert outcome.stdout == b"prepared\n42\n"


def test_info_reports_capacity_and_runtimes(stub, spawner_server):
    info = stub.Info(pb.InfoRequest())
    assert info.capacity == spawner_server.spawner.settings.capacity
    assert info.free_slots == info.capacity
    assert info.runtime_images["python"]
    assert info.oci_runtime == "runc"
    assert "runc" in info.available_runtimes
    assert info.limits.max_timeout_ms >= info.limits.default_timeout_ms


def test_duplicate_execution_id_in_flight_is_refused(stub):
    req = request({"main.py": SLEEPER})
    call, _ = _start_and_wait_running(stub, req)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            collect(stub.Execute(req, timeout=10))
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "execution_id" in refused.value.details()
    finally:
        stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant))
    assert collect(call).result.status == CANCELLED  # the first was untouched until cancelled


def test_past_capacity_is_refused_at_once(stub, spawner_server):
    capacity = spawner_server.spawner.settings.capacity
    calls = []
    try:
        for _ in range(capacity):
            call, _ = _start_and_wait_running(stub, request({"main.py": SLEEPER}))
            calls.append(call)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            collect(stub.Execute(request({"main.py": "print(1)"}), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Not held until a slot frees (the sleepers run 60 s): refused at once.
        assert time.monotonic() - started < 30
    finally:
        for call in calls:
            call.cancel()
    _wait_for_free_slots(spawner_server)


def test_concurrent_executions_all_complete(stub):
    outcomes = [None] * 4

    def run(i):
        outcomes[i] = execute(stub, request({"main.py": f"print({i})"}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.stdout for o in outcomes] == [f"{i}\n".encode() for i in range(4)]
