"""Installing a request's packages: the installer command lines, where the
program finds what was installed, and reading an installer's failure. Pure
functions.

Which names and versions are acceptable is the shared contract's
(services/common/contract/packages.py); what reaches these functions has
passed it.
"""

from __future__ import annotations

DEPS = "/workspace/deps"
# Under DEPS, where each language's installer puts what it installs.
INSTALLED = {"python": "python", "node": "node"}
PYTHON_TARGET = f"{DEPS}/{INSTALLED['python']}"
NODE_PREFIX = f"{DEPS}/{INSTALLED['node']}"


def install_command(language: str, requirements: list[str], *, allow_sdist: bool, allow_scripts: bool) -> list[str]:
    if language == "python":
        argv = [
            "python3",
            # Isolated: the working directory (/workspace, where the tenant's
            # code/ and output/ are) is not on the installer's import path.
            "-I",
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--progress-bar",
            "off",
            # No .pyc files: the sandbox never writes them either
            # (PYTHONDONTWRITEBYTECODE), and compiling numpy and pandas is
            # most of an install's time once the wheels come from the cache.
            "--no-compile",
            "--target",
            PYTHON_TARGET,
        ]
        if not allow_sdist:
            argv += ["--only-binary", ":all:"]
        return argv + requirements
    argv = [
        "npm",
        "install",
        "--prefix",
        NODE_PREFIX,
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--no-package-lock",
        "--loglevel",
        "error",
    ]
    if not allow_scripts:
        argv.append("--ignore-scripts")
    return argv + requirements


def install_environment() -> dict[str, str]:
    """The installers unpack into the workspace, not the small /tmp (a tmpfs
    that counts against the memory limit): the unpacked files then only have
    to be renamed into place, and the workspace's cap is what bounds them."""
    return {"TMPDIR": DEPS}


def run_environment(language: str) -> dict[str, str]:
    """Where the program finds what was installed."""
    if language == "python":
        return {"PYTHONPATH": PYTHON_TARGET}
    return {"NODE_PATH": f"{NODE_PREFIX}/node_modules"}


_NOT_FOUND = [
    "No matching distribution found",
    "Could not find a version that satisfies",
    "npm ERR! code E404",
    "npm ERR! code ETARGET",
    "npm error code E404",
    "npm error code ETARGET",
    "is not in this registry",
    "No matching version found",
]


def looks_not_found(output: str) -> bool:
    return any(marker in output for marker in _NOT_FOUND)
