"""The sandbox seccomp profile on real containers: what it refuses is refused
from inside a sandbox, and ordinary programs still run."""

from __future__ import annotations

import errno
import json
import platform
import secrets

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner import seccomp
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.helpers import execute, request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the probe knows x86_64 syscall numbers only"),
]

COMPLETED = common.EXECUTION_STATUS_COMPLETED
SIGSYS = 31

# Calls each refused syscall through libc's syscall(2) with arguments that
# would do no harm if it were allowed (own memory, invalid descriptors,
# paths that do not exist), and prints {name: [return value, errno]}.
PROBE = r"""
import ctypes, json, os, struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
scratch = ctypes.create_string_buffer(4096)  # zeroed memory for struct arguments
BUF = ctypes.addressof(scratch)
NOWHERE = b"/nonexistent"
AT_FDCWD = -100
CLONE, PTRACE = 56, 101
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
UFFD_USER_MODE_ONLY = 1
KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING = -2, -3
ADDR_NO_RANDOMIZE = 0x0040000
AF_ALG, AF_VSOCK, SOCK_STREAM, SOCK_SEQPACKET = 38, 40, 1, 5
PTRACE_TRACEME = 0
LANDLOCK_CREATE_RULESET_VERSION = 1

# Two iovecs over our own memory for process_vm_readv/writev.
struct.pack_into("QQQQ", scratch, 1024, BUF + 2048, 8, BUF + 3072, 8)
LOCAL_IOV, REMOTE_IOV = BUF + 1024, BUF + 1040

CALLS = {
    "io_uring_setup": (425, 1, BUF),
    "io_uring_enter": (426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": (427, -1, 0, 0, 0),
    "userfaultfd": (323, UFFD_USER_MODE_ONLY),
    "bpf": (321, 0, BUF, 72),
    "keyctl": (250, 0, KEY_SPEC_SESSION_KEYRING, 0),
    "add_key": (248, b"user", b"probe", BUF, 1, KEY_SPEC_PROCESS_KEYRING),
    "request_key": (249, b"user", b"probe", 0, 0),
    "perf_event_open": (298, BUF, 0, -1, -1, 0),
    "unshare": (272, CLONE_NEWUSER),
    "setns": (308, -1, 0),
    "mount": (165, b"none", NOWHERE, b"tmpfs", 0, 0),
    "umount2": (166, NOWHERE, 0),
    "pivot_root": (155, NOWHERE, NOWHERE),
    "chroot": (161, b"/"),
    "process_vm_readv": (310, os.getpid(), LOCAL_IOV, 1, REMOTE_IOV, 1, 0),
    "process_vm_writev": (311, os.getpid(), LOCAL_IOV, 1, REMOTE_IOV, 1, 0),
    "kcmp": (312, os.getpid(), os.getpid(), 0, 0, 0),
    "pidfd_getfd": (438, -1, 0, 0),
    "open_by_handle_at": (304, -1, BUF, 0),
    "name_to_handle_at": (303, AT_FDCWD, b"/", BUF, BUF + 512, 0),
    "fanotify_init": (300, 0, 0),
    "fsopen": (430, b"tmpfs", 0),
    "open_tree": (428, AT_FDCWD, NOWHERE, 0),
    "mount_setattr": (442, -1, b"", 0, 0, 0),
    "landlock_create_ruleset": (444, 0, 0, LANDLOCK_CREATE_RULESET_VERSION),
    "modify_ldt": (154, 0, BUF, 16),
    "iopl": (172, 0),
    "adjtimex": (159, BUF),
    "clock_adjtime": (305, 0, BUF),
    "syslog": (103, 10, 0, 0),
    "sysfs": (139, 3),
    "get_mempolicy": (239, 0, 0, 0, 0, 0),
    "vmsplice": (278, -1, 0, 0, 0),
    "personality_addr_no_randomize": (135, ADDR_NO_RANDOMIZE),
    "socket_af_vsock": (41, AF_VSOCK, SOCK_STREAM, 0),
    "socket_af_alg": (41, AF_ALG, SOCK_SEQPACKET, 0),
    "clone3": (435, 0, 0),
}
# Made in a child process: if allowed they would change their caller.
IN_CHILD = {
    "clone_newuser": (CLONE, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "ptrace": (PTRACE, PTRACE_TRACEME, 0, 0, 0),
}


def call(nr, *args):
    args = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *args)
    return [ret, ctypes.get_errno() if ret == -1 else 0]


def in_child(nr, *args):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        outcome = call(nr, *args)
        if outcome[0] == 0 and nr == CLONE:
            os._exit(0)  # the process the clone made
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    return json.loads(os.read(read_end, 100))


results = {name: call(*spec) for name, spec in CALLS.items()}
results.update({name: in_child(*spec) for name, spec in IN_CHILD.items()})
print(json.dumps(results))
"""

REFUSED_AS_MISSING = {"clone3"}

# A 64-bit program making a 32-bit (int 0x80) getpid: the profile knows no
# 32-bit ABI, so the kernel kills the caller with SIGSYS.
INT80 = r"""
import ctypes, mmap, subprocess, sys

CODE = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (i386 getpid); int 0x80; ret
if sys.argv[1:] == ["child"]:
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(CODE)
    function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    print("returned", function())
else:
    print(subprocess.run([sys.executable, __file__, "child"]).returncode)
"""

PYTHON_WORKLOAD = r"""
import concurrent.futures, multiprocessing, socket, subprocess, threading

def square(x):
    return x * x

if __name__ == "__main__":
    seen = []
    threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads", sorted(seen) == list(range(8)))
    with multiprocessing.Pool(2) as pool:
        print("fork pool", sum(pool.map(square, range(10))))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print("spawn pool", pool.apply(square, (7,)))
    with concurrent.futures.ProcessPoolExecutor(2) as executor:
        print("executor", list(executor.map(square, [2, 3])))
    queue = multiprocessing.Queue()
    queue.put("queued")
    print(queue.get())
    print(subprocess.run(["sh", "-c", "echo shell"], capture_output=True, text=True).stdout.strip())
    print("interfaces", "lo" in [name for _, name in socket.if_nameindex()])  # over netlink
    print(open("/proc/self/status").read().split("Seccomp:")[1].split()[0])
"""

NODE_WORKLOAD = r"""
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
const { execFileSync } = require('child_process');
const crypto = require('crypto');
const os = require('os');

function inWorker(n) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: n });
    worker.on('message', resolve);
    worker.on('error', reject);
  });
}

async function main() {
  console.log('workers', (await Promise.all([1, 2, 3].map(inWorker))).join(','));
  console.log(execFileSync(process.execPath, ['-e', 'console.log("child")']).toString().trim());
  const key = await new Promise((resolve, reject) =>
    crypto.scrypt('secret', 'salt', 16, (err, k) => (err ? reject(err) : resolve(k))));
  console.log('scrypt', key.length);
  console.log('interfaces', Object.keys(os.networkInterfaces()).includes('lo'));  // over netlink
}

if (isMainThread) {
  main().catch((err) => { console.error(err); process.exit(1); });
} else {
  parentPort.postMessage(workerData * 10);
}
"""


# The profile is the runc wall's: on a spawner whose default is gVisor
# (tests/integration/conftest.py) these ask for runc by name.
RUNC = {"runtime": "runc"}


def probe(stub) -> dict[str, list[int]]:
    outcome = execute(stub, request({"main.py": PROBE}, **RUNC))
    assert outcome.result.status == COMPLETED, outcome.stderr
    return json.loads(outcome.stdout)


def test_each_refused_syscall_fails_inside_a_sandbox(stub):
    results = probe(stub)
    for name, (ret, err) in results.items():
        expected = errno.ENOSYS if name in REFUSED_AS_MISSING else errno.EPERM
        assert (ret, err) == (-1, expected), f"{name} returned {ret} ({errno.errorcode.get(err, err)})"


def test_the_32_bit_syscall_abi_is_closed(stub):
    outcome = execute(stub, request({"main.py": INT80}, **RUNC))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout == f"{-SIGSYS}\n".encode()


def test_python_threads_processes_and_subprocesses_still_run(stub, spawner_server):
    # On the spawner's default runtime: under gVisor too, threads and
    # processes run (its kernel serves them; the profile is not applied
    # there, docs/security.md), so the last line is seccomp mode 0.
    gvisor = spawner_server.spawner.settings.default_runtime == "gvisor"
    outcome = execute(stub, request({"main.py": PYTHON_WORKLOAD}))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout.decode().splitlines() == [
        "threads True",
        "fork pool 285",
        "spawn pool 49",
        "executor [4, 9]",
        "queued",
        "shell",
        "interfaces True",
        "0" if gvisor else "2",  # seccomp mode 2: a filter is in force
    ]


# Under gVisor the calls the profile refuses meet gVisor's own kernel, not
# the host's: a user namespace is made there, inside the Sentry.
GVISOR_PROBE = r"""
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
print(platform.release(), libc.unshare(CLONE_NEWUSER), open("/proc/self/uid_map").read().split()[:2])
"""


def test_under_gvisor_refused_calls_reach_gvisors_kernel_not_the_hosts(stub):
    outcome = execute(stub, request({"main.py": GVISOR_PROBE}, runtime="gvisor"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    release, unshared, *_ = outcome.stdout.decode().split(" ", 2)
    assert release == "4.4.0" != platform.release()  # gVisor's kernel answered
    assert unshared == "0"  # allowed by the Sentry: it has no host kernel code behind it
    runc = execute(stub, request({"main.py": GVISOR_PROBE}, runtime="runc"))
    assert runc.result.status == COMPLETED, runc.stderr
    assert runc.stdout.decode().split(" ", 2)[:2] == [platform.release(), "-1"]  # the profile refuses it


def test_node_worker_threads_and_child_processes_still_run(stub):
    outcome = execute(stub, request({"main.js": NODE_WORKLOAD}, language="node"))
    assert outcome.result.status == COMPLETED, outcome.stderr
    assert outcome.stdout.decode().splitlines() == ["workers 10,20,30", "child", "scrypt 16", "interfaces true"]


def _profile_allowing_io_uring() -> dict:
    profile = seccomp.build_profile()
    io_uring = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in io_uring]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    profile["syscalls"].append({"names": io_uring, "action": seccomp.ACT_ALLOW})
    return profile


def test_an_operators_profile_is_used_instead(docker_api, tmp_path):
    """SPAWNER_SECCOMP_PROFILE replaces the shipped profile; here with one
    that lets io_uring through, which the probe then sees."""
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(_profile_allowing_io_uring()))
    name = f"seccomp-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    running = start(make_settings(name, root, seccomp_profile=str(path)))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
            results = probe(stub)
    finally:
        running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
    ring_fd, err = results.pop("io_uring_setup")
    assert ring_fd >= 0 and err == 0
    assert results["userfaultfd"] == [-1, errno.EPERM]
