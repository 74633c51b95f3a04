"""The sandbox seccomp profile (services/spawner/seccomp.py), read the way
the engine and runc read it."""

from __future__ import annotations

import errno
import json

import pytest
from pydantic import ValidationError

from services.spawner import seccomp
from services.spawner.config import SpawnerSettings

PROFILE = seccomp.build_profile()
ALLOWED = "allowed"

SIGCHLD = 17
CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_SIGHAND = 0x800
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
CLONE_SYSVSEM = 0x40000
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_CHILD_SETTID = 0x1000000
# What glibc's pthread_create passes to clone.
THREAD_FLAGS = (
    CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
)
FORK_FLAGS = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
VFORK_FLAGS = CLONE_VM | CLONE_VFORK | SIGCHLD
NAMESPACE_FLAGS = (
    seccomp.CLONE_NEWNS,
    seccomp.CLONE_NEWCGROUP,
    seccomp.CLONE_NEWUTS,
    seccomp.CLONE_NEWIPC,
    seccomp.CLONE_NEWUSER,
    seccomp.CLONE_NEWPID,
    seccomp.CLONE_NEWNET,
)

AF_PACKET, AF_ALG, AF_VSOCK = 17, 38, 40
NETLINK_AUDIT = 9
ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC = 0x0040000, 0x0400000

# What a Python or Node program cannot do without.
MUST_HAVE = (
    "read",
    "write",
    "openat",
    "close",
    "fstat",
    "newfstatat",
    "statx",
    "lseek",
    "mmap",
    "munmap",
    "mprotect",
    "brk",
    "futex",
    "execve",
    "exit_group",
    "wait4",
    "pipe2",
    "dup2",
    "epoll_wait",
    "epoll_ctl",
    "poll",
    "getrandom",
    "rt_sigaction",
    "rt_sigprocmask",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getdents64",
    "faccessat2",
    "close_range",
    "connect",
    "sendto",
    "recvfrom",
    "eventfd2",
    "madvise",
    "clock_nanosleep",
    "arch_prctl",
)
# The calls the issue names, and their kin.
MUST_REFUSE = (
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "lookup_dcookie",
    "acct",
    "quotactl",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "vhangup",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "fspick",
    "mount_setattr",
    "pidfd_getfd",
    "iopl",
    "ioperm",
    "modify_ldt",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "nfsservctl",
    "vm86",
    "vm86old",
    "get_kernel_syms",
    "query_module",
    "create_module",
    "kcmp",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
)


def _rule_applies(rule: dict, arch: str) -> bool:
    arches = rule.get("includes", {}).get("arches")
    return not arches or arch in arches


def _args_match(conditions: list[dict], args: tuple[int, ...]) -> bool:
    for cond in conditions:
        value = args[cond["index"]] if cond["index"] < len(args) else 0
        if cond["op"] == seccomp.CMP_EQ and value != cond["value"]:
            return False
        if cond["op"] == seccomp.CMP_MASKED_EQ and value & cond["value"] != cond["valueTwo"]:
            return False
        if cond["op"] not in (seccomp.CMP_EQ, seccomp.CMP_MASKED_EQ):
            raise AssertionError(f"operator the test does not model: {cond['op']}")
    return True


def decide(name: str, *args: int, arch: str = "amd64", profile: dict = PROFILE) -> str | int:
    """ALLOWED, or the errno the call fails with."""
    refused_with = None
    for rule in profile["syscalls"]:
        if name not in rule["names"] or not _rule_applies(rule, arch):
            continue
        if rule["action"] == seccomp.ACT_ALLOW and _args_match(rule.get("args", []), args):
            return ALLOWED
        if rule["action"] == seccomp.ACT_ERRNO:
            refused_with = rule["errnoRet"]
    return profile["defaultErrnoRet"] if refused_with is None else refused_with


def test_profile_has_the_engines_shape():
    assert json.loads(json.dumps(PROFILE)) == PROFILE
    assert PROFILE["defaultAction"] == "SCMP_ACT_ERRNO"
    assert PROFILE["defaultErrnoRet"] == errno.EPERM
    assert [a["architecture"] for a in PROFILE["archMap"]] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
    assert all(a["subArchitectures"] == [] for a in PROFILE["archMap"])
    for rule in PROFILE["syscalls"]:
        assert rule["names"] and all(isinstance(n, str) for n in rule["names"])
        assert rule["action"] in (seccomp.ACT_ALLOW, seccomp.ACT_ERRNO)
        if rule["action"] == seccomp.ACT_ERRNO:
            assert rule["errnoRet"] in (errno.EPERM, errno.ENOSYS)
            assert not rule.get("args"), "a refusal never depends on arguments"
        for cond in rule.get("args", []):
            assert set(cond) == {"index", "value", "valueTwo", "op"}
            assert 0 <= cond["index"] < 6


def test_no_call_is_both_allowed_and_refused():
    allowed = [n for names in seccomp.ALLOWED.values() for n in names] + list(seccomp.ALLOWED_ON_X86_64)
    refused = [n for names in seccomp.REFUSED.values() for n in names] + list(seccomp.REFUSED_AS_MISSING)
    assert len(allowed) == len(set(allowed))
    assert len(refused) == len(set(refused))
    assert not set(allowed) & set(refused)
    assert not {"clone", "socket", "socketpair", "personality"} & (set(allowed) | set(refused))


@pytest.mark.parametrize("name", MUST_REFUSE)
def test_refuses(name):
    assert decide(name, 0, 0, 0) == errno.EPERM


def test_every_listed_refusal_is_eperm():
    for names in seccomp.REFUSED.values():
        for name in names:
            assert decide(name) == errno.EPERM, name


def test_clone3_looks_missing_so_libc_falls_back_to_clone():
    assert decide("clone3") == errno.ENOSYS


@pytest.mark.parametrize("name", MUST_HAVE)
def test_allows(name):
    assert decide(name) == ALLOWED


def test_arch_prctl_only_on_x86_64():
    assert decide("arch_prctl", arch="amd64") == ALLOWED
    assert decide("arch_prctl", arch="arm64") == errno.EPERM


def test_unknown_calls_are_refused():
    assert decide("some_future_syscall") == errno.EPERM


@pytest.mark.parametrize("flags", [THREAD_FLAGS, FORK_FLAGS, VFORK_FLAGS, SIGCHLD])
def test_clone_for_threads_and_processes(flags):
    assert decide("clone", flags) == ALLOWED


@pytest.mark.parametrize("namespace", NAMESPACE_FLAGS)
def test_clone_into_a_new_namespace_is_refused(namespace):
    assert decide("clone", namespace | SIGCHLD) == errno.EPERM
    assert decide("clone", namespace | THREAD_FLAGS) == errno.EPERM


def test_socket_families():
    for family in (seccomp.AF_UNIX, seccomp.AF_INET, seccomp.AF_INET6):
        assert decide("socket", family, 1, 0) == ALLOWED
    assert decide("socket", seccomp.AF_NETLINK, 3, seccomp.NETLINK_ROUTE) == ALLOWED
    assert decide("socket", seccomp.AF_NETLINK, 3, NETLINK_AUDIT) == errno.EPERM
    for family in (AF_PACKET, AF_ALG, AF_VSOCK):
        assert decide("socket", family, 1, 0) == errno.EPERM
    assert decide("socketpair", seccomp.AF_UNIX, 1, 0) == ALLOWED
    assert decide("socketpair", seccomp.AF_INET, 1, 0) == errno.EPERM


def test_personality_may_only_be_read_or_reset():
    assert decide("personality", seccomp.PER_QUERY) == ALLOWED
    assert decide("personality", seccomp.PER_LINUX) == ALLOWED
    for flag in (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC):
        assert decide("personality", flag) == errno.EPERM


def test_security_opt_carries_the_shipped_profile():
    option = seccomp.security_opt(None)
    assert option.startswith("seccomp=")
    assert json.loads(option.removeprefix("seccomp=")) == PROFILE


def test_an_operators_profile_replaces_the_shipped_one(tmp_path):
    own = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(own))
    settings = SpawnerSettings(seccomp_profile=str(path))
    assert json.loads(seccomp.security_opt(settings.seccomp_profile).removeprefix("seccomp=")) == own


def test_an_empty_setting_means_the_shipped_profile():
    assert SpawnerSettings(seccomp_profile="").seccomp_profile is None


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"syscalls": []}', '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}', b"\xff\xfe"],
)
def test_a_bad_profile_is_refused_at_start(tmp_path, content):
    path = tmp_path / "profile.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValidationError, match="seccomp profile"):
        SpawnerSettings(seccomp_profile=str(path))


def test_a_missing_profile_is_refused_at_start(tmp_path):
    with pytest.raises(ValidationError, match="cannot read seccomp profile"):
        SpawnerSettings(seccomp_profile=str(tmp_path / "absent.json"))
    # "unconfined" is a file name like any other: the setting cannot turn seccomp off.
    with pytest.raises(ValidationError, match="cannot read seccomp profile"):
        SpawnerSettings(seccomp_profile="unconfined")
