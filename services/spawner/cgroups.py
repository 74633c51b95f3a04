"""Per-execution cgroup parents: what an execution used, measured from outside.

Every sandbox container is started under its own cgroup parent. The
container's cgroup vanishes with the container, but the parent keeps the
hierarchical peak memory, CPU time and OOM-kill count, so the spawner reads
them after the container is gone and then removes the parent. Nothing inside
the container can influence these numbers.

Supports cgroup v1 (memory.max_usage_in_bytes, cpuacct.usage,
memory.oom_control) and v2 (memory.peak, cpu.stat, memory.events), with
Docker's cgroupfs driver and, on v2, its systemd driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import time

ROOT_SEGMENT = "sandbox-mesh"
MICROSECONDS_PER_SECOND = 1_000_000  # cgroup v2 cpu.stat
NANOSECONDS_PER_SECOND = 1_000_000_000  # cgroup v1 cpuacct.usage


@dataclasses.dataclass(frozen=True)
class CgroupUsage:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    oom_kills: int = 0


def _read_int(path: pathlib.Path) -> int:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def _read_keyed(path: pathlib.Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (FileNotFoundError, ValueError):
        pass
    return 0


def _v1_oom_kills(memory: pathlib.Path) -> int:
    """cgroup v1 counts OOM kills only where the limit is, the container's
    own group: add up the parent's children (the container, once)."""
    total = _read_keyed(memory / "memory.oom_control", "oom_kill")
    if not memory.is_dir():
        return total
    for child in _subdirectories(memory):
        total += _read_keyed(child / "memory.oom_control", "oom_kill")
    return total


def _subdirectories(directory: pathlib.Path) -> list[pathlib.Path]:
    """The directories in `directory`, symbolic links left out. scandir's
    entries carry their type: no stat per file (a v1 memory cgroup alone
    holds some 30 files, and every execution walks its parent's)."""
    with os.scandir(directory) as entries:
        return [pathlib.Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False)]


# How long a freeze (or thaw) may take, and how often to look.
FREEZE_SECONDS = 2.0
FREEZE_POLL_SECONDS = 0.001


@dataclasses.dataclass(frozen=True)
class CgroupLayout:
    """How this host lays out cgroups, and where the spawner sees them."""

    root: pathlib.Path
    unified: bool  # cgroup v2
    systemd_driver: bool

    @classmethod
    def detect(cls, root: str, docker_cgroup_driver: str) -> CgroupLayout:
        path = pathlib.Path(root)
        unified = (path / "cgroup.controllers").exists()
        return cls(root=path, unified=unified, systemd_driver=docker_cgroup_driver == "systemd")

    def parent_for(self, spawner_name: str, token: str) -> CgroupParent:
        """`token` is [a-z0-9] only: systemd reads '-' in slice names as nesting."""
        if self.systemd_driver:
            # Docker's systemd driver takes a slice name; "a-b-c.slice" lives at
            # a.slice/a-b.slice/a-b-c.slice.
            prefix = f"sandboxmesh-{spawner_name.replace('-', '').replace('_', '')}"
            name = f"{prefix}-{token}.slice"
            relative = pathlib.PurePosixPath("sandboxmesh.slice", f"{prefix}.slice", name)
            return CgroupParent(self, docker_value=name, relative=relative)
        relative = pathlib.PurePosixPath(ROOT_SEGMENT, spawner_name, token)
        return CgroupParent(self, docker_value=f"/{relative}", relative=relative)

    def spawner_directories(self, spawner_name: str) -> list[pathlib.Path]:
        """Directories holding this spawner's parents (for the reaper)."""
        if self.systemd_driver:
            prefix = f"sandboxmesh-{spawner_name.replace('-', '').replace('_', '')}"
            bases = [self.root / "sandboxmesh.slice" / f"{prefix}.slice"]
        elif self.unified:
            bases = [self.root / ROOT_SEGMENT / spawner_name]
        else:
            bases = [c / ROOT_SEGMENT / spawner_name for c in self._v1_controllers()]
        return [b for b in bases if b.is_dir()]

    def _v1_controllers(self) -> list[pathlib.Path]:
        return _subdirectories(self.root)


@dataclasses.dataclass(frozen=True)
class CgroupParent:
    layout: CgroupLayout
    docker_value: str  # what goes into HostConfig.CgroupParent
    relative: pathlib.PurePosixPath

    def read(self) -> CgroupUsage:
        root = self.layout.root
        if self.layout.unified:
            directory = root / self.relative
            return CgroupUsage(
                cpu_seconds=_read_keyed(directory / "cpu.stat", "usage_usec") / MICROSECONDS_PER_SECOND,
                peak_memory_bytes=_read_int(directory / "memory.peak"),
                oom_kills=_read_keyed(directory / "memory.events", "oom_kill"),
            )
        memory = root / "memory" / self.relative
        cpuacct = root / "cpuacct" / self.relative
        return CgroupUsage(
            cpu_seconds=_read_int(cpuacct / "cpuacct.usage") / NANOSECONDS_PER_SECOND,
            peak_memory_bytes=_read_int(memory / "memory.max_usage_in_bytes"),
            oom_kills=_v1_oom_kills(memory),
        )

    def freeze(self) -> None:
        """Stops every process under the parent where it is, at once (a
        file write instead of the engine's kill, which waits for the
        container to be torn down). Raises OSError if it cannot."""
        self._set_frozen(True)

    def thaw(self) -> None:
        """Lets frozen processes run again (a frozen one cannot even die)."""
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        directory = self.layout.root / ("" if self.layout.unified else "freezer") / self.relative
        if not directory.is_dir():
            # The engine makes the parent when it starts the container: a
            # sandbox cancelled before that has nothing to freeze or thaw.
            return
        if self.layout.unified:
            (directory / "cgroup.freeze").write_text("1" if frozen else "0")
            done = lambda: _read_keyed(directory / "cgroup.events", "frozen") == int(frozen)  # noqa: E731
        else:
            state = directory / "freezer.state"
            state.write_text("FROZEN" if frozen else "THAWED")
            done = lambda: state.read_text().strip() == ("FROZEN" if frozen else "THAWED")  # noqa: E731
        deadline = time.monotonic() + FREEZE_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise OSError(f"the cgroup parent did not {'freeze' if frozen else 'thaw'} in {FREEZE_SECONDS} s")
            time.sleep(FREEZE_POLL_SECONDS)

    def end_frozen(self) -> bool:
        """Sends SIGKILL to every process of the frozen parent, delivered
        when it is thawed: the container then ends by itself, and removing
        it spares the engine its kill (a runc process, the shim's and the
        daemons' part in it: about 30 ms of CPU per sandbox). False where
        it cannot (not frozen; on cgroup v1, processes this PID namespace
        does not see): the engine kills them instead."""
        if self.layout.unified:
            kill = self.layout.root / self.relative / "cgroup.kill"  # Linux 5.14+
            if not kill.exists():
                return False
            kill.write_text("1")
            return True
        freezer = self.layout.root / "freezer" / self.relative
        if _read_text(freezer / "freezer.state") != "FROZEN":
            return False
        # Frozen, no listed process can exit (an exited one is not listed),
        # so no pid read here can be taken by another process meanwhile;
        # each is still signalled through a pidfd checked to be ours.
        pids = [pid for directory in _tree(freezer) for pid in _read_pids(directory / "cgroup.procs")]
        ended = 0
        for pid in pids:
            ended += _kill_member(pid, f"/{self.relative}")
        return bool(pids) and ended == len(pids)

    def directories(self) -> list[pathlib.Path]:
        if self.layout.unified:
            return [self.layout.root / self.relative]
        return [c / self.relative for c in self.layout._v1_controllers()]

    def remove(self) -> None:
        """Removes the parent in every hierarchy. Raises OSError on failure
        (the caller logs and counts it); a parent that is already gone is fine."""
        errors = []
        for directory in self.directories():
            try:
                remove_cgroup_tree(directory)
            except OSError as exc:
                errors.append(f"{directory}: {exc}")
        if errors:
            raise OSError("cannot remove cgroup parent: " + "; ".join(errors))


def _read_text(path: pathlib.Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _read_pids(path: pathlib.Path) -> list[int]:
    """A cgroup's processes as this PID namespace sees them (those it does
    not see are left out)."""
    return [int(line) for line in _read_text(path).split()]


def _kill_member(pid: int, relative: str) -> int:
    """SIGKILLs `pid` if it is (still) under the cgroup `relative` of the
    freezer hierarchy; 1 if it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii") as table:  # the pidfd pins who `pid` is
            paths = [line.rstrip("\n").split(":", 2) for line in table]
        if not any("freezer" in c.split(",") and (p == relative or p.startswith(relative + "/")) for _, c, p in paths):
            return 0
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return 1
    except (ProcessLookupError, FileNotFoundError):
        return 0
    finally:
        os.close(pidfd)


def _tree(directory: pathlib.Path) -> list[pathlib.Path]:
    """`directory` and every cgroup below it, parents first."""
    if not directory.is_dir():
        return []
    found = [directory]
    index = 0
    while index < len(found):
        found.extend(_subdirectories(found[index]))
        index += 1
    return found


def remove_cgroup_tree(directory: pathlib.Path) -> None:
    """rmdir a cgroup directory and its (empty) child cgroups, deepest first.
    cgroup directories cannot be removed with rmtree: their files are
    virtual. Walked with a list, not recursion."""
    if directory.is_symlink():
        return
    for path in reversed(_tree(directory)):  # children first
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)
