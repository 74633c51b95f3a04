"""Package installs into the workspace, through an egress of the suite's own.

The spawner gives each execution a network of its own with the egress on it
(the sandbox's only way out); the egress allowlists the registries the
runtime image's pip and npm are configured with (`registry_egress`)."""

from __future__ import annotations

import secrets

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.egress.conftest import PROXY_PORT
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def install_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("install-cache")


@pytest.fixture(scope="module")
def package_spawner(mesh, registry_egress, docker_api, tmp_path_factory, install_cache):
    name = f"pkg-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("pkg-workspaces")
    running = start(
        make_settings(
            name,
            root,
            egress_container=registry_egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=registry_egress.grpc_target,
            install_timeout_ms=240_000,
            install_cache_dir=str(install_cache),
        )
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            signed = grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode()))
            yield spawner_pb2_grpc.SpawnerStub(signed)
    finally:
        running.stop(grace_seconds=5)
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def test_pip_package_is_installed_into_the_workspace(package_spawner):
    req = request({"main.py": "import six, sys\nprint(six.__name__, six.__file__.startswith('/workspace/deps/'))"})
    req.packages.add(name="six", version="==1.16.0")
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"six True\n"
    assert pb.PHASE_INSTALLING in outcome.phases()
    assert outcome.phases().index(pb.PHASE_INSTALLING) < outcome.phases().index(pb.PHASE_RUNNING)
    assert outcome.result.usage.install_ms > 0


def test_npm_package_is_installed_into_the_workspace(package_spawner):
    req = request(
        {
            "main.js": "const isNumber = require('is-number');\n"
            "console.log(isNumber(5), require.resolve('is-number').startsWith('/workspace/deps/'));"
        },
        language="node",
    )
    req.packages.add(name="is-number", version="7.0.0")
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"true true\n"


def test_unknown_package_is_package_not_found(package_spawner):
    req = request({"main.py": "print('never runs')"})
    req.packages.add(name=f"sandbox-mesh-no-such-package-{secrets.token_hex(6)}")
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_FAILED
    assert outcome.result.error_code == common.ERROR_CODE_PACKAGE_NOT_FOUND, outcome.result
    assert "package not found" in outcome.result.error_message
    assert outcome.stdout == b""
    assert pb.PHASE_RUNNING not in outcome.phases()


def test_sdist_only_package_is_refused_by_default(package_spawner):
    """Binary wheels only unless the caller opts in."""
    req = request({"main.py": "print('never runs')"})
    # A release published only as a source distribution.
    req.packages.add(name="docopt", version="==0.6.2")
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.error_code == common.ERROR_CODE_PACKAGE_NOT_FOUND, outcome.result


DATA_SCIENCE = """
import os
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy, pandas, scipy.stats
frame = pandas.DataFrame({'x': numpy.arange(10), 'y': scipy.stats.norm.pdf(numpy.linspace(-2, 2, 10))})
frame.plot(x='x', y='y')
plt.savefig('/workspace/output/chart.png')
usage = os.statvfs('/workspace')
print((usage.f_blocks - usage.f_bfree) * usage.f_frsize, usage.f_files - usage.f_ffree)
"""


def test_the_data_science_stack_fits_the_default_workspace(package_spawner):
    """numpy, pandas, matplotlib and scipy install into the workspace (its
    own filesystem, with the default byte and inode caps) and run."""
    req = request({"main.py": DATA_SCIENCE})
    for name in ("numpy", "pandas", "matplotlib", "scipy"):
        req.packages.add(name=name)
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, (outcome.result, outcome.stderr)
    used_bytes, used_inodes = map(int, outcome.stdout.split())
    assert used_bytes > 200 * 1024 * 1024 and used_inodes > 5_000  # the stack is in the workspace
    chart = b"".join(e.output_file.content for e in outcome.events if e.WhichOneof("event") == "output_file")
    assert chart.startswith(b"\x89PNG")


POISON_MY_COPY = """
import six, sys
print(six.__version__, flush=True)
with open(six.__file__, 'w') as module:  # the installed copy in this workspace
    module.write("raise SystemExit('poisoned')\\n")
"""


def _kept_trees(install_cache) -> list[str]:
    return sorted(p.name for p in install_cache.iterdir() if not p.name.startswith("."))


def test_a_second_install_comes_from_the_install_cache_untouched_by_the_first(package_spawner, install_cache):
    req = request({"main.py": POISON_MY_COPY})
    req.packages.add(name="six", version="==1.15.0")
    first = execute(package_spawner, req, timeout=300)
    assert first.result.status == common.EXECUTION_STATUS_COMPLETED, first.result
    assert first.stdout == b"1.15.0\n"
    kept = _kept_trees(install_cache)
    assert kept, "the installed tree was not kept"

    again = request({"main.py": "import six\nprint(six.__version__)"})
    again.packages.add(name="six", version="==1.15.0")
    second = execute(package_spawner, again, timeout=300)
    assert second.result.status == common.EXECUTION_STATUS_COMPLETED, (second.result, second.stderr)
    assert second.stdout == b"1.15.0\n"  # the first program's poison stayed in its own workspace
    assert second.result.usage.install_ms < first.result.usage.install_ms
    assert _kept_trees(install_cache) == kept


def test_installs_that_may_run_package_code_are_not_kept(package_spawner, install_cache):
    before = _kept_trees(install_cache)
    req = request({"main.py": "import six\nprint(six.__version__)"})
    req.packages.add(name="six", version="==1.14.0")
    req.install.allow_sdist = True  # an sdist's build would run its code
    outcome = execute(package_spawner, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert _kept_trees(install_cache) == before


def test_pip_and_npm_install_under_gvisor_too(package_spawner):
    python = request({"main.py": "import platform, six\nprint(platform.release(), six.__name__)"}, runtime="gvisor")
    python.packages.add(name="six", version="==1.16.0")
    outcome = execute(package_spawner, python, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"4.4.0 six\n"  # gVisor's kernel, the package from the egress
    node = request(
        {"main.js": "console.log(require('os').release(), require('is-number')(5))"}, language="node", runtime="gvisor"
    )
    node.packages.add(name="is-number", version="7.0.0")
    outcome = execute(package_spawner, node, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"4.4.0 true\n"
