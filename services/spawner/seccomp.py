"""The seccomp profile every sandbox container runs under.

The engine's own default depends on its version (Docker 20.10's lets a
sandbox set up io_uring, AF_VSOCK sockets and ptrace), so the spawner always
passes a profile of its own: refuse by default (EPERM), allow by name what
Python, pip, Node and npm use, and filter the arguments of the few calls that
are harmless only with some arguments (clone, socket, socketpair,
personality). The choice is explained in docs/security.md.

An operator may supply a profile file instead (SPAWNER_SECCOMP_PROFILE);
`python -m services.spawner.seccomp` prints the shipped one as a start.
"""

from __future__ import annotations

import errno
import functools
import json
import pathlib
import sys

ACT_ALLOW = "SCMP_ACT_ALLOW"
ACT_ERRNO = "SCMP_ACT_ERRNO"
CMP_EQ = "SCMP_CMP_EQ"
CMP_MASKED_EQ = "SCMP_CMP_MASKED_EQ"

# 64-bit ABIs only: no x86 (int 0x80), x32 or arm sub-architecture, whose
# compat entry points nothing in the images uses.
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")

# Namespace flags of clone(2); a sandbox may create processes and threads,
# never namespaces. (CLONE_NEWTIME shares its bit with the exit signal in
# clone(2) and exists only for clone3 and unshare, both refused.)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
# The one netlink protocol libc (getaddrinfo's AI_ADDRCONFIG, getifaddrs)
# and Node (os.networkInterfaces) open.
NETLINK_ROUTE = 0

PER_LINUX = 0
PER_QUERY = 0xFFFFFFFF  # personality(0xffffffff) reads the persona, changes nothing

# Allowed unconditionally, by what they are for.
# Syscall names read best packed (one a line would be hundreds of lines).
# fmt: off
ALLOWED: dict[str, tuple[str, ...]] = {
    "files": (
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2", "pwritev",
        "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "dup",
        "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "ioctl", "stat", "fstat", "lstat",
        "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2",
        "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir",
        "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
        "symlinkat", "unlink", "unlinkat", "mknod", "mknodat", "chmod", "fchmod", "fchmodat",
        "fchmodat2", "chown", "fchown", "fchownat", "lchown", "umask", "truncate", "ftruncate",
        "fallocate", "fadvise64", "readahead", "fsync", "fdatasync", "sync", "syncfs",
        "sync_file_range", "utime", "utimes", "utimensat", "futimesat", "copy_file_range",
        "sendfile", "splice", "tee", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
        "llistxattr", "flistxattr", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
        "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch",
    ),
    "memory": (
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
        "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "memfd_create", "pkey_alloc",
        "pkey_free", "pkey_mprotect",
    ),
    "processes": (
        "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "kill",
        "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid",
        "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address", "set_robust_list",
        "get_robust_list", "rseq", "futex", "futex_waitv", "restart_syscall", "prctl", "seccomp",
        "capget", "capset", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo",
        "uname", "getcpu", "getrandom", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
        "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_getattr",
        "sched_setattr", "sched_get_priority_max", "sched_get_priority_min",
        "sched_rr_get_interval",
    ),
    # Without capabilities these can only give privileges away.
    "identity": (
        "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
        "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
        "setgroups",
    ),
    "signals": (
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd",
        "signalfd4", "pause",
    ),
    "time": (
        "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
        "alarm", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
        "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    ),
    "events": (
        "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
        "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    ),
    # socket and socketpair themselves are allowed below, for some families.
    "network": (
        "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
        "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
        "recvmmsg", "shutdown",
    ),
    # System V IPC and POSIX message queues, within the sandbox's own IPC
    # namespace; the legacy AIO calls, bounded by the host's aio-max-nr.
    "ipc_and_aio": (
        "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget",
        "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
        "mq_notify", "mq_getsetattr", "io_setup", "io_destroy", "io_submit", "io_cancel",
        "io_getevents", "io_pgetevents",
    ),
}

# x86_64 only: how a 64-bit program sets its thread pointer.
ALLOWED_ON_X86_64 = ("arch_prctl",)

# Refused, listed by name so the profile says so (the default would refuse
# them too). Each group is a reason.
REFUSED: dict[str, tuple[str, ...]] = {
    # The kernel interfaces behind most recent privilege escalations.
    "exploit_surface": (
        "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "bpf",
        "perf_event_open", "keyctl", "add_key", "request_key",
    ),
    # Namespaces and mounts: a way into kernel code written for root.
    "namespaces_and_mounts": (
        "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen",
        "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    ),
    # Reading or steering another process.
    "other_processes": (
        "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "process_mrelease",
        "kcmp", "pidfd_getfd",
    ),
    # The whole machine's state: modules, kexec, clock, swap, accounting.
    "host_state": (
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "create_module", "query_module", "get_kernel_syms", "reboot", "swapon", "swapoff", "acct",
        "quotactl", "quotactl_fd", "syslog", "vhangup", "sethostname", "setdomainname",
        "settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
        "set_mempolicy", "get_mempolicy", "mbind", "migrate_pages", "move_pages",
    ),
    # Files by handle, filesystem-wide watches, profiling.
    "filesystem_bypass": (
        "open_by_handle_at", "name_to_handle_at", "fanotify_init", "fanotify_mark", "lookup_dcookie",
    ),
    # Obsolete or compat-only interfaces nothing in the images calls.
    "obsolete": (
        "modify_ldt", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "vm86", "vm86old",
        "set_thread_area", "get_thread_area", "remap_file_pages", "vmsplice", "epoll_ctl_old",
        "epoll_wait_old", "memfd_secret", "landlock_create_ruleset", "landlock_add_rule",
        "landlock_restrict_self",
    ),
}
# fmt: on

# glibc starts threads and processes with clone3 and falls back to clone only
# on ENOSYS; clone3's flags sit in memory, out of seccomp's sight.
REFUSED_AS_MISSING = ("clone3",)


def _arg(index: int, value: int, op: str = CMP_EQ, value_two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def _allow(names: tuple[str, ...] | list[str], *args: dict, comment: str = "", **extra) -> dict:
    return {"names": list(names), "action": ACT_ALLOW, "args": list(args), "comment": comment, **extra}


def _filtered_rules() -> list[dict]:
    """Calls allowed only with some arguments; several rules for one call
    are alternatives, the conditions of one rule all have to hold."""
    return [
        _allow(
            ["clone"],
            _arg(0, CLONE_NAMESPACE_FLAGS, CMP_MASKED_EQ, 0),
            comment="processes and threads, no new namespaces",
        ),
        _allow(["socket"], _arg(0, AF_UNIX), comment="local sockets"),
        _allow(["socket"], _arg(0, AF_INET), comment="IPv4"),
        _allow(["socket"], _arg(0, AF_INET6), comment="IPv6"),
        _allow(["socket"], _arg(0, AF_NETLINK), _arg(2, NETLINK_ROUTE), comment="interface and address lists"),
        _allow(["socketpair"], _arg(0, AF_UNIX), comment="local socket pairs"),
        _allow(["personality"], _arg(0, PER_LINUX), comment="the default persona"),
        _allow(["personality"], _arg(0, PER_QUERY), comment="reading the persona"),
    ]


def build_profile() -> dict:
    """The shipped profile, in the engine's JSON profile format."""
    return {
        "defaultAction": ACT_ERRNO,
        "defaultErrnoRet": errno.EPERM,
        "archMap": [{"architecture": arch, "subArchitectures": []} for arch in ARCHITECTURES],
        "syscalls": [
            _allow(sorted(name for names in ALLOWED.values() for name in names)),
            _allow(ALLOWED_ON_X86_64, includes={"arches": ["amd64"]}),
            *_filtered_rules(),
            {
                "names": list(REFUSED_AS_MISSING),
                "action": ACT_ERRNO,
                "errnoRet": errno.ENOSYS,
                "comment": "so that libc falls back to clone, whose flags are filtered",
            },
            *(
                {"names": list(names), "action": ACT_ERRNO, "errnoRet": errno.EPERM, "comment": reason}
                for reason, names in REFUSED.items()
            ),
        ],
    }


class SeccompProfileError(ValueError):
    pass


def read_profile(path: str) -> dict:
    """An operator's profile file, checked for the shape the engine expects."""
    try:
        profile = json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SeccompProfileError(f"cannot read seccomp profile {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SeccompProfileError(f"seccomp profile {path} is not JSON: {exc}") from exc
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise SeccompProfileError(f"seccomp profile {path} must be a JSON object with a defaultAction")
    if not isinstance(profile.get("syscalls", []), list):
        raise SeccompProfileError(f"seccomp profile {path}: syscalls must be a list")
    return profile


@functools.lru_cache(maxsize=4)
def security_opt(path: str | None) -> str:
    """The container's `seccomp=<profile JSON>` security option: the
    operator's profile at `path`, or the shipped one. Read once per path."""
    profile = read_profile(path) if path else build_profile()
    return "seccomp=" + json.dumps(profile, separators=(",", ":"))


if __name__ == "__main__":
    json.dump(build_profile(), sys.stdout, indent=2)
    sys.stdout.write("\n")
