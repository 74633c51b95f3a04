"""Spawner settings, read from SPAWNER_* environment variables (the request
limits it shares with control from MESH_* ones).

Each field's docstring is its line in the README's configuration table
(scripts/gen_config_docs.py renders it).
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
SESSION_SUFFIX = "+session"
MAX_WARM_PER_RUNTIME = 64
_WARM_POOL_FORM = f"<runtime>[{NETWORK_SUFFIX}][+runc|+gvisor]=<count> or <python runtime>{SESSION_SUFFIX}=<count>"


def parse_warm_pool(entries: tuple[str, ...], default_runtime: str = RUNC) -> dict[tuple[str, bool, str, bool], int]:
    """`("python=2", "node+network+gvisor=1", "python+session=1")` ->
    {("python", False, <the default sandbox runtime>, False): 2,
    ("node", True, "gvisor", False): 1, ("python", False, "runc", True): 1}.
    A `+session` sandbox has its interpreter started ahead, for a session
    (python only, on runc, without a network: what sessions run on)."""
    targets: dict[tuple[str, bool, str, bool], int] = {}
    for entry in entries:
        name, equals, count = entry.partition("=")
        runtime, *options = name.strip().split("+")
        network = "network" in options
        session = "session" in options
        sandbox_runtimes = [o for o in options if o in SANDBOX_RUNTIMES]
        unknown = [o for o in options if o not in ("network", "session") and o not in SANDBOX_RUNTIMES]
        if not equals or runtime not in RUNTIME_NAMES or not count.strip().isdigit() or unknown:
            raise ValueError(
                f"warm_pool entry {entry!r}: write {_WARM_POOL_FORM}, the runtime one of {', '.join(RUNTIME_NAMES)}"
            )
        if len(options) != len(set(options)) or len(sandbox_runtimes) > 1:
            raise ValueError(f"warm_pool entry {entry!r}: write {_WARM_POOL_FORM}")
        if session and (network or sandbox_runtimes or not runtime.startswith("python")):
            raise ValueError(
                f"warm_pool entry {entry!r}: {SESSION_SUFFIX} is for python runtimes alone (runc, no network)"
            )
        key = (
            runtime,
            network,
            RUNC if session else (sandbox_runtimes[0] if sandbox_runtimes else default_runtime),
            session,
        )
        if key in targets:
            raise ValueError(f"warm_pool entry {entry!r}: {name.strip()} is given twice")
        if not 0 <= int(count) <= MAX_WARM_PER_RUNTIME:
            raise ValueError(f"warm_pool entry {entry!r}: at most {MAX_WARM_PER_RUNTIME} per entry")
        targets[key] = int(count)
    return targets


class SpawnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPAWNER_", frozen=True, use_attribute_docstrings=True)

    # Where the gRPC server listens. Loopback by default: only control (or an
    # operator's grpcurl) should reach a spawner.
    docker_host: str = ""
    """The Docker engine's address (`unix:///path/to/docker.sock`, `tcp://host:port`); empty: the engine's default
    socket."""
    listen: str = "127.0.0.1:50051"
    """gRPC listen address (compose sets `0.0.0.0:50051` inside the container and publishes it on loopback only)."""
    secret: SecretStr | None = None
    """Shared secret for HMAC-signed calls; required unless `SPAWNER_INSECURE=1`."""
    insecure: bool = False
    """Run without authentication (logged loudly at start); local development only."""
    name: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    """Labels every container and names the cgroup parent; spawners sharing a Docker host need different names."""
    # The image of each runtime (contract/runtimes.py): a language's
    # standard image, and Python's "datascience" variant.
    python_image: str = "sandbox-mesh/runtime:local"
    """Image for Python executions."""
    node_image: str = "sandbox-mesh/runtime:local"
    """Image for Node executions."""
    python_datascience_image: str = "sandbox-mesh/runtime-datascience:local"
    """Image for Python executions with `variant` `"datascience"` (numpy, pandas, scipy, matplotlib preinstalled)."""
    default_runtime: Literal["runc", "gvisor"] = "runc"
    """Sandbox runtime (`runc` or `gvisor`) of a request whose `runtime` is empty; refused at start if not offered."""
    oci_runtime: str = "runc"
    """The engine's OCI runtime for `runc` sandboxes (a microVM runtime may stand in: docs/security.md); refused at
    start if the engine does not offer it."""
    # The engine's runtimes for "gvisor" sandboxes: runsc registered with
    # `--network=none` for sandboxes without a network, and with
    # `--network=host` (the container's own namespace) for sandboxes on the
    # egress network (scripts/ensure_gvisor.sh registers both). gVisor is
    # offered only where the engine has them.
    gvisor_runtime: str = "runsc"
    """The engine's runtime for `gvisor` sandboxes without a network; gVisor is offered only when the engine lists
    it (and the next, with an egress)."""
    gvisor_network_runtime: str = "runsc-network"
    """The engine's runtime for `gvisor` sandboxes on the egress network."""
    seccomp_profile: str | None = None
    """Path, as the spawner sees it, of a seccomp profile (the engine's JSON format) applied to every sandbox
    instead of the shipped one (docs/security.md, Kernel attack surface); refused at start if unreadable. Unset: the
    shipped profile."""
    # Per-execution workspaces live here. When the spawner runs in a container
    # this directory must be mounted at the same path as on the host, since
    # the engine resolves bind-mount sources on the host.
    workspace_root: str = "/var/lib/sandbox-mesh/workspaces"
    """Per-execution workspaces (an image file and its mount point each); must be the same path on the host, and a
    shared mount, when the spawner runs in a container (`make up` sees to both)."""
    cgroup_root: str = "/sys/fs/cgroup"
    """The host's cgroup tree as the spawner sees it (compose mounts it at `/host/sys/fs/cgroup`)."""

    capacity: int = Field(default=4, ge=1, le=256)
    """Executions in flight; past it `RESOURCE_EXHAUSTED`."""

    # How a program gets into its started sandbox: `runner` hands it to the
    # runner waiting inside over a socket in the workspace
    # (services/spawner/handoff.py); `exec` starts it with `docker exec`
    # (slower; for OCI runtimes that cannot share a unix socket through a
    # bind mount). gVisor sandboxes always use `exec`: a socket bound inside
    # gVisor is gVisor's own and never appears on the host.
    handoff: Literal["runner", "exec"] = "runner"
    """How a program reaches its started sandbox: `runner` (the runner inside, over a socket in the workspace) or
    `exec` (`docker exec`, slower; for OCI runtimes that cannot share a unix socket through a bind mount)."""
    # Sandboxes started ahead of demand, each waiting for exactly one
    # execution: `<runtime>[+network][+runc|+gvisor]=<count>` entries
    # (runtimes: python, node, python-datascience; `+network` ones sit on a
    # network of their own with the egress, and are ignored without one; with
    # no `+runc`/`+gvisor` an entry is the default sandbox runtime's). Only requests with the
    # default memory and CPU limits can use them; others start cold. Empty:
    # no pool.
    warm_pool: CommaList = ("python=2", "node=2", "python+network=2", "node+network=2", "python+session=1")
    """Sandboxes started ahead of demand, `<runtime>[+network][+runc|+gvisor]=<count>` entries (runtimes `python`,
    `node`, `python-datascience`), and `<python runtime>+session=<count>` for sandboxes whose interpreter is started
    ahead for a session; only requests with the default memory and CPU limits use them; empty for none
    (docs/decisions.md, Warm pool)."""

    default_timeout_ms: int = Field(default=10_000, ge=100)
    """Timeout when a request gives 0."""
    max_timeout_ms: int = Field(default=300_000, ge=100)
    """Largest timeout a request may ask for (smallest: 100)."""
    default_memory_bytes: int = Field(default=256 * MIB, ge=16 * MIB)
    """Memory limit when a request gives 0 (no swap on top)."""
    min_memory_bytes: int = Field(default=32 * MIB, ge=16 * MIB)
    """Smallest memory limit a request may ask for."""
    max_memory_bytes: int = Field(default=2048 * MIB, ge=16 * MIB)
    """Largest memory limit a request may ask for."""
    default_cpus: float = Field(default=1.0, gt=0)
    """CPUs when a request gives 0."""
    max_cpus: float = Field(default=2.0, gt=0)
    """Most CPUs a request may ask for."""
    pids_limit: int = Field(default=128, ge=16)
    """Processes and threads per sandbox."""
    # Under gVisor the program's `pids_limit` is enforced by gVisor's own
    # kernel, and the engine's pids limit bounds gVisor itself: its host
    # threads and processes, several per program process in ptrace mode and
    # more when many run at once (a sandbox that reaches it ends, reported as
    # RUNTIME_ERROR "the sandbox ended"). `capacity` times this must stay well
    # inside the host's kernel.pid_max.
    gvisor_pids_limit: int = Field(default=1024, ge=64)
    """Under gVisor, the engine's pids limit: gVisor's own host threads and processes (the program's
    `SPAWNER_PIDS_LIMIT` is then enforced inside the sandbox as RLIMIT_NPROC); a sandbox that reaches it ends
    (RUNTIME_ERROR "the sandbox ended"); `SPAWNER_CAPACITY` times this must stay well inside the host's
    `kernel.pid_max`."""
    file_size_limit_bytes: int = Field(default=64 * MIB, ge=MIB)
    """Largest file the sandbox may write (RLIMIT_FSIZE)."""
    tmpfs_bytes: int = Field(default=64 * MIB, ge=MIB)
    """Size of the sandbox's `/tmp` (counts against its memory)."""

    # Size and count caps of a request, shared with control (MESH_* variables).
    limits: RequestLimits = Field(default_factory=RequestLimits)

    max_output_bytes: int = Field(default=1 * MIB, ge=1024)
    """stdout+stderr streamed per execution before `OUTPUT_LIMIT`."""

    drain_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long executions in flight may finish before they are cancelled."""

    # Output files harvested from /workspace/output/ after every exit.
    max_output_files: int = Field(default=100, ge=0)
    """Files harvested from `/workspace/output/`."""
    max_output_file_bytes: int = Field(default=10 * MIB, ge=0)
    """Bytes per harvested file."""
    max_output_total_bytes: int = Field(default=50 * MIB, ge=0)
    """Bytes of all harvested files."""
    max_output_entries: int = Field(default=1000, ge=1)
    """Directory entries the harvest looks at before it stops."""
    # The whole workspace (code, outputs, installed packages): each is a
    # filesystem of its own this large (a sparse image on the host's disk),
    # with this many inodes. Past either the program gets ENOSPC; a run that
    # fails with its workspace full ends OUTPUT_LIMIT. The defaults hold
    # numpy, pandas, matplotlib and scipy with room to spare.
    max_workspace_bytes: int = Field(default=1024 * MIB, ge=4 * MIB)
    """Size of each workspace's own filesystem (a sparse image on the host's disk, never larger than this); past it
    the program gets `ENOSPC`, and a run that fails with its workspace full ends `OUTPUT_LIMIT` (docs/security.md,
    Disk)."""
    max_workspace_inodes: int = Field(default=65_536, ge=64)
    """Files and directories a workspace may hold; past it `ENOSPC` likewise (the inode tables may take at most half
    the workspace)."""

    # Packages. The egress's container (name or id): executions with packages
    # or `network` each get a Docker network of their own (internal, no
    # host address, IPv6 off; one per slot, made at start) with this
    # container connected, and nothing else on it; without one, such
    # requests are refused with FAILED_PRECONDITION.
    egress_container: str | None = None
    """The egress's container (name or id). Executions with packages or `network` each get an internal Docker
    network of their own (one per slot, made at start, IPv6 off, no host address), with this container connected and
    nothing else; refused at start if the container is missing or the networks cannot be made. Unset: such requests
    are refused with `FAILED_PRECONDITION`."""
    egress_proxy_port: int = Field(default=3128, ge=1, le=65535)
    """The egress's proxy port; sandboxes get `HTTPS_PROXY`/`HTTP_PROXY` at the egress's address on their network."""
    egress_secret: SecretStr | None = None
    """Shared with the egress; mints per-execution proxy credentials and signs calls to its gRPC service."""
    # The egress's gRPC address (host:port or unix:PATH), required with
    # `egress_secret`: the spawner admits each execution there with its
    # sandbox's address once the sandbox started (the egress refuses
    # credentials of executions not admitted, or used from elsewhere),
    # revokes it when the execution ends, and after a failed run asks what
    # the egress refused for it, to report EGRESS_DENIED as a fact. Calls
    # are signed with `egress_secret`.
    egress_grpc: str | None = None
    """The egress's gRPC address (`host:port` or `unix:PATH`), required with `SPAWNER_EGRESS_SECRET`: each execution
    is admitted there with its sandbox's address once the sandbox started and revoked when it ends; the egress's
    decisions classify `EGRESS_DENIED`."""
    # The intercepting egress's CA certificate (intercept mode), as this
    # spawner sees it: mounted read-only into sandboxes with a network and
    # trusted by pip, npm, Python and Node there. Refused at
    # start if it holds a key. It is also the host path of the file that is
    # mounted, unless `egress_ca_volume` is set.
    egress_ca_cert: str | None = None
    """An intercepting egress's CA certificate as the spawner sees it (its host path unless
    `SPAWNER_EGRESS_CA_VOLUME` is set), mounted read-only into sandboxes and trusted there (refused if it holds a
    key)."""
    # The Docker volume holding that certificate (and nothing secret), for a
    # spawner in a container (compose): with `egress_ca_cert` set, the volume
    # is mounted into sandboxes instead, and every file next to the
    # certificate is checked for keys.
    egress_ca_volume: str | None = None
    """The Docker volume holding that certificate, mounted into sandboxes instead of the file (a spawner in a
    container: compose); refused if missing or if any file next to the certificate holds a key."""
    install_timeout_ms: int = Field(default=180_000, ge=1000)
    """Time limit of the package install phase (separate from the run's)."""
    # Installed packages kept for the next execution asking for the same ones
    # (services/spawner/install_cache.py), at most this many bytes; empty:
    # nothing is kept. Only this spawner writes there.
    install_cache_dir: str = "/var/lib/sandbox-mesh/install-cache"
    """Installed package trees kept for the next execution with the same packages (same image, requirements and UTC
    day; wheels-only and script-free installs only); empty to keep none."""
    install_cache_max_bytes: int = Field(default=4096 * MIB, ge=0)
    """Size cap of that cache; least recently used trees go first."""

    reap_on_start: bool = True
    """Remove containers, workspaces and cgroup parents labelled with this spawner's name that a previous run left."""
    sweep_interval_seconds: float = Field(default=60.0, gt=0)
    """How often unowned leftovers older than any execution can live are removed."""
    metrics_listen: str = "127.0.0.1:9464"
    """Prometheus `/metrics`; empty turns it off."""

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
    def warm_pool_targets(self) -> dict[tuple[str, bool, str, bool], int]:
        """How many warm sandboxes to keep, by (runtime, has a network,
        sandbox runtime, interpreter started for a session); an entry naming
        no sandbox runtime is the default's."""
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
