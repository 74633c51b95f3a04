"""Package requests: validation of names and versions, the installer command
lines, and reading an installer's failure. Pure functions.

Names and versions are checked against conservative patterns so that nothing
a caller sends can become an installer option, a URL, a path or a VCS spec.
"""

from __future__ import annotations

import re

MAX_PACKAGES = 50
DEPS = "/workspace/deps"
PYTHON_TARGET = f"{DEPS}/python"
NODE_PREFIX = f"{DEPS}/node"

_PIP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]{1,100}\])?")
_PIP_CLAUSE = r"\s*(?:===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]{1,64}\s*"
_PIP_SPECIFIER = re.compile(rf"{_PIP_CLAUSE}(?:,{_PIP_CLAUSE}){{0,7}}")
_PIP_BARE_VERSION = re.compile(r"[0-9][A-Za-z0-9.*+!_-]{0,63}")
_NPM_NAME = re.compile(r"(?:@[a-z0-9~][a-z0-9._~-]{0,100}/)?[a-z0-9~][a-z0-9._~-]{0,100}")
_NPM_RANGE = re.compile(r"[A-Za-z0-9.^~<>=*|+ x-]{1,64}")


def check(language: str, name: str, version: str) -> str | None:
    """Returns why a package is refused, or None."""
    if language == "python":
        if not _PIP_NAME.fullmatch(name):
            return "not a valid Python package name"
        if version and not (_PIP_SPECIFIER.fullmatch(version) or _PIP_BARE_VERSION.fullmatch(version)):
            return "not a version specifier (e.g. '==1.2', '>=2,<3')"
        return None
    if not _NPM_NAME.fullmatch(name) or len(name) > 214:
        return "not a valid npm package name"
    if version and (not _NPM_RANGE.fullmatch(version) or version.startswith("-")):
        return "not a version range (e.g. '^1.2.0', '1.x')"
    return None


def requirement(language: str, name: str, version: str) -> str:
    if language == "python":
        if version and _PIP_BARE_VERSION.fullmatch(version):
            return f"{name}=={version}"
        return f"{name}{version}"
    return f"{name}@{version}" if version else name


def install_command(language: str, requirements: list[str], *, allow_sdist: bool, allow_scripts: bool) -> list[str]:
    if language == "python":
        argv = [
            "python3", "-m", "pip", "install",
            "--no-input", "--disable-pip-version-check", "--no-cache-dir",
            "--progress-bar", "off", "--target", PYTHON_TARGET,
        ]
        if not allow_sdist:
            argv += ["--only-binary", ":all:"]
        return argv + requirements
    argv = [
        "npm", "install", "--prefix", NODE_PREFIX,
        "--no-audit", "--no-fund", "--no-save", "--no-package-lock", "--loglevel", "error",
    ]
    if not allow_scripts:
        argv.append("--ignore-scripts")
    return argv + requirements


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
