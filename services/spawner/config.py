"""Spawner settings, read from SPAWNER_* environment variables (the request
limits it shares with control from MESH_* ones).

Every field here is listed in the README's configuration table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.contract.limits import RequestLimits
from services.common.contract.runtimes import DATASCIENCE, RUNTIME_NAMES, STANDARD, runtime_name
from services.common.contract.sandbox_runtimes import GVISOR, RUNC, SANDBOX_RUNTIMES
from services.common.settings import CommaList
from services.spawner import seccomp
from services.spawner.outputs import OutputCaps

MIB = 1024 * 1024
INODE_BYTES = 256  # what each inode takes in a workspace's inode tables
INODE_TABLE_SHARE = 2  # the inode tables may take at most 1/this of a workspace
NETWORK_SUFFIX = "+network"
MAX_WARM_PER_RUNTIME = 64
_WARM_POOL_FORM = f"<runtime>[{NETWORK_SUFFIX}][+runc|+gvisor]=<count>"


def parse_warm_pool(entries: tuple[str, ...], default_runtime: str = RUNC) -> dict[tuple[str, bool, str], int]:
    """`("python=2", "node+network+gvisor=1")` -> {("python", False, <the
    default sandbox runtime>): 2, ("node", True, "gvisor"): 1}."""
    targets: dict[tuple[str, bool, str], int] = {}
    for entry in entries:
        name, equals, count = entry.partition("=")
        runtime, *options = name.strip().split("+")
        network = "network" in options
        sandbox_runtimes = [o for o in options if o in SANDBOX_RUNTIMES]
        unknown = [o for o in options if o != "network" and o not in SANDBOX_RUNTIMES]
        if not equals or runtime not in RUNTIME_NAMES or not count.strip().isdigit() or unknown:
            raise ValueError(
                f"warm_pool entry {entry!r}: write {_WARM_POOL_FORM}, the runtime one of {', '.join(RUNTIME_NAMES)}"
            )
        if len(options) != len(set(options)) or len(sandbox_runtimes) > 1:
            raise ValueError(f"warm_pool entry {entry!r}: write {_WARM_POOL_FORM}")
        key = (runtime, network, sandbox_runtimes[0] if sandbox_runtimes else default_runtime)
        if key in targets:
            raise ValueError(f"warm_pool entry {entry!r}: {name.strip()} is given twice")
        if not 0 <= int(count) <= MAX_WARM_PER_RUNTIME:
            raise ValueError(f"warm_pool entry {entry!r}: at most {MAX_WARM_PER_RUNTIME} per entry")
        targets[key] = int(count)
    return targets


class SpawnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPAWNER_", frozen=True)

    # Where the gRPC server listens. Loopback by default: only control (or an
    # operator's grpcurl) should reach a spawner.
    listen: str = "127.0.0.1:50051"
    # Shared secret for HMAC-signed calls (services/common/auth.py). Without
    # one the spawner refuses to start unless `insecure` is set explicitly.
    secret: SecretStr | None = None
    insecure: bool = False
    # Labels every container and names the cgroup parent; two spawners sharing
    # one Docker host must use different names.
    name: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # The image of each runtime (contract/runtimes.py): a language's
    # standard image, and Python's "datascience" variant.
    python_image: str = "sandbox-mesh/runtime:local"
    node_image: str = "sandbox-mesh/runtime:local"
    python_datascience_image: str = "sandbox-mesh/runtime-datascience:local"
    # The sandbox runtime of a request that names none: "runc" or "gvisor"
    # (services/common/contract/sandbox_runtimes.py, docs/security.md).
    default_runtime: Literal["runc", "gvisor"] = "runc"
    # The engine's OCI runtime for "runc" sandboxes (an operator may point it
    # at a microVM runtime instead; docs/security.md).
    oci_runtime: str = "runc"
    # The engine's runtimes for "gvisor" sandboxes: runsc registered with
    # `--network=none` for sandboxes without a network, and with
    # `--network=host` (the container's own namespace) for sandboxes on the
    # egress network (scripts/ensure_gvisor.sh registers both). gVisor is
    # offered only where the engine has them.
    gvisor_runtime: str = "runsc"
    gvisor_network_runtime: str = "runsc-network"
    # An operator's seccomp profile file (the engine's JSON format) used for
    # every sandbox instead of the shipped one (services/spawner/seccomp.py).
    seccomp_profile: str | None = None
    # Per-execution workspaces live here. When the spawner runs in a container
    # this directory must be mounted at the same path as on the host, since
    # the engine resolves bind-mount sources on the host.
    workspace_root: str = "/var/lib/sandbox-mesh/workspaces"
    # The host's cgroup filesystem as the spawner sees it.
    cgroup_root: str = "/sys/fs/cgroup"

    capacity: int = Field(default=4, ge=1, le=256)

    # How a program gets into its started sandbox: `runner` hands it to the
    # runner waiting inside over a socket in the workspace
    # (services/spawner/handoff.py); `exec` starts it with `docker exec`
    # (slower; for OCI runtimes that cannot share a unix socket through a
    # bind mount). gVisor sandboxes always use `exec`: a socket bound inside
    # gVisor is gVisor's own and never appears on the host.
    handoff: Literal["runner", "exec"] = "runner"
    # Sandboxes started ahead of demand, each waiting for exactly one
    # execution: `<runtime>[+network][+runc|+gvisor]=<count>` entries
    # (runtimes: python, node, python-datascience; `+network` ones sit on a
    # network of their own with the egress, and are ignored without one; with
    # no `+runc`/`+gvisor` an entry is the default sandbox runtime's). Only requests with the
    # default memory and CPU limits can use them; others start cold. Empty:
    # no pool.
    warm_pool: CommaList = ("python=2", "node=2", "python+network=2", "node+network=2")

    default_timeout_ms: int = Field(default=10_000, ge=100)
    max_timeout_ms: int = Field(default=300_000, ge=100)
    default_memory_bytes: int = Field(default=256 * MIB, ge=16 * MIB)
    min_memory_bytes: int = Field(default=32 * MIB, ge=16 * MIB)
    max_memory_bytes: int = Field(default=2048 * MIB, ge=16 * MIB)
    default_cpus: float = Field(default=1.0, gt=0)
    max_cpus: float = Field(default=2.0, gt=0)
    pids_limit: int = Field(default=128, ge=16)
    # Under gVisor the program's `pids_limit` is enforced by gVisor's own
    # kernel, and the engine's pids limit bounds gVisor itself: its host
    # threads and processes, several per program process in ptrace mode and
    # more when many run at once (a sandbox that reaches it ends, reported as
    # RUNTIME_ERROR "the sandbox ended"). `capacity` times this must stay well
    # inside the host's kernel.pid_max.
    gvisor_pids_limit: int = Field(default=1024, ge=64)
    # Largest single file the sandbox may write (RLIMIT_FSIZE).
    file_size_limit_bytes: int = Field(default=64 * MIB, ge=MIB)
    tmpfs_bytes: int = Field(default=64 * MIB, ge=MIB)

    # Size and count caps of a request, shared with control (MESH_* variables).
    limits: RequestLimits = Field(default_factory=RequestLimits)

    # stdout + stderr streamed per execution; past it the run is killed with
    # OUTPUT_LIMIT.
    max_output_bytes: int = Field(default=1 * MIB, ge=1024)

    # On SIGTERM, executions in flight get this long before they are cancelled.
    drain_seconds: float = Field(default=30.0, ge=0)

    # Output files harvested from /workspace/output/ after every exit.
    max_output_files: int = Field(default=100, ge=0)
    max_output_file_bytes: int = Field(default=10 * MIB, ge=0)
    max_output_total_bytes: int = Field(default=50 * MIB, ge=0)
    # Directory entries the harvest looks at before it stops looking.
    max_output_entries: int = Field(default=1000, ge=1)
    # The whole workspace (code, outputs, installed packages): each is a
    # filesystem of its own this large (a sparse image on the host's disk),
    # with this many inodes. Past either the program gets ENOSPC; a run that
    # fails with its workspace full ends OUTPUT_LIMIT. The defaults hold
    # numpy, pandas, matplotlib and scipy with room to spare.
    max_workspace_bytes: int = Field(default=1024 * MIB, ge=4 * MIB)
    max_workspace_inodes: int = Field(default=65_536, ge=64)

    # Packages. The egress's container (name or id): executions with packages
    # or `network` each get a Docker network of their own (internal, no
    # host address, IPv6 off; one per slot, made at start) with this
    # container connected, and nothing else on it; without one, such
    # requests are refused with FAILED_PRECONDITION.
    egress_container: str | None = None
    # The egress's proxy port, set with its address on the sandbox's network
    # as HTTPS_PROXY/HTTP_PROXY (with per-execution credentials when
    # `egress_secret` is set).
    egress_proxy_port: int = Field(default=3128, ge=1, le=65535)
    egress_secret: SecretStr | None = None
    # The egress's gRPC address (host:port or unix:PATH), required with
    # `egress_secret`: the spawner admits each execution there with its
    # sandbox's address once the sandbox started (the egress refuses
    # credentials of executions not admitted, or used from elsewhere),
    # revokes it when the execution ends, and after a failed run asks what
    # the egress refused for it, to report EGRESS_DENIED as a fact. Calls
    # are signed with `egress_secret`.
    egress_grpc: str | None = None
    # The intercepting egress's CA certificate (intercept mode), as this
    # spawner sees it: mounted read-only into sandboxes with a network and
    # trusted by pip, npm, Python and Node there. Refused at
    # start if it holds a key. It is also the host path of the file that is
    # mounted, unless `egress_ca_volume` is set.
    egress_ca_cert: str | None = None
    # The Docker volume holding that certificate (and nothing secret), for a
    # spawner in a container (compose): with `egress_ca_cert` set, the volume
    # is mounted into sandboxes instead, and every file next to the
    # certificate is checked for keys.
    egress_ca_volume: str | None = None
    install_timeout_ms: int = Field(default=180_000, ge=1000)
    # Installed packages kept for the next execution asking for the same ones
    # (services/spawner/install_cache.py), at most this many bytes; empty:
    # nothing is kept. Only this spawner writes there.
    install_cache_dir: str = "/var/lib/sandbox-mesh/install-cache"
    install_cache_max_bytes: int = Field(default=4096 * MIB, ge=0)

    # Cleanup of containers or workspaces that a previous spawner left behind.
    reap_on_start: bool = True
    # How often the sweep looks for unowned leftovers older than any
    # execution can live.
    sweep_interval_seconds: float = Field(default=60.0, gt=0)
    # Prometheus /metrics over HTTP; empty to turn off.
    metrics_listen: str = "127.0.0.1:9464"

    def output_caps(self) -> OutputCaps:
        """What the harvest of /workspace/output/ returns at most."""
        return OutputCaps(
            max_files=self.max_output_files,
            max_file_bytes=self.max_output_file_bytes,
            max_total_bytes=self.max_output_total_bytes,
            max_entries=self.max_output_entries,
            max_path_length=self.limits.max_path_length,
        )

    def runtime_images(self) -> dict[str, str]:
        """The image of every runtime, by its name ("python-datascience")."""
        return {
            runtime_name("python"): self.python_image,
            runtime_name("node"): self.node_image,
            runtime_name("python", DATASCIENCE): self.python_datascience_image,
        }

    def image_for(self, language: str, variant: str = STANDARD) -> str:
        """The image an execution of `language` in `variant` runs in; the
        pair has passed check_variant."""
        return self.runtime_images()[runtime_name(language, variant)]

    @field_validator("seccomp_profile")
    @classmethod
    def _seccomp_profile_is_readable(cls, path: str | None) -> str | None:
        if not path:
            return None
        seccomp.read_profile(path)  # refused at start, not at the first execution
        return path

    @field_validator("warm_pool")
    @classmethod
    def _warm_pool_is_well_formed(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        parse_warm_pool(entries)
        return entries

    @property
    def warm_pool_targets(self) -> dict[tuple[str, bool, str], int]:
        """How many warm sandboxes to keep, by (runtime, has a network,
        sandbox runtime); an entry naming no sandbox runtime is the default's."""
        return {key: n for key, n in parse_warm_pool(self.warm_pool, self.default_runtime).items() if n}

    def engine_runtime(self, sandbox_runtime: str, network: bool) -> str:
        """The engine's OCI runtime for a sandbox of `sandbox_runtime`."""
        if sandbox_runtime == GVISOR:
            return self.gvisor_network_runtime if network else self.gvisor_runtime
        return self.oci_runtime

    @model_validator(mode="after")
    def _ranges_are_consistent(self) -> SpawnerSettings:
        if not self.default_timeout_ms <= self.max_timeout_ms:
            raise ValueError("default_timeout_ms must not exceed max_timeout_ms")
        if not self.min_memory_bytes <= self.default_memory_bytes <= self.max_memory_bytes:
            raise ValueError("memory defaults must satisfy min <= default <= max")
        if not self.default_cpus <= self.max_cpus:
            raise ValueError("default_cpus must not exceed max_cpus")
        if self.max_workspace_inodes * INODE_BYTES * INODE_TABLE_SHARE > self.max_workspace_bytes:
            raise ValueError(
                f"max_workspace_inodes: {self.max_workspace_inodes} inodes take more than "
                f"1/{INODE_TABLE_SHARE} of a {self.max_workspace_bytes}-byte workspace"
            )
        return self
