"""Package requests: which names and versions are acceptable, the requirement
an installer is given, and when two entries name the same package. Pure
functions.

Names and versions are checked against conservative patterns so that nothing
a caller sends can become an installer option, a URL, a path or a VCS spec.
"""

from __future__ import annotations

import re

MAX_NPM_NAME_LENGTH = 214
# No accepted name is longer (a Python name with extras is at most 204).
MAX_NAME_LENGTH = MAX_NPM_NAME_LENGTH
# Room for the longest specifier the pattern allows without padding (eight
# clauses of 64-character versions); the pattern alone would let spaces
# around the operators make it any length.
MAX_VERSION_LENGTH = 1024

_PIP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]{1,100}\])?")
_PIP_CLAUSE = r"\s*(?:===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]{1,64}\s*"
_PIP_SPECIFIER = re.compile(rf"{_PIP_CLAUSE}(?:,{_PIP_CLAUSE}){{0,7}}")
_PIP_BARE_VERSION = re.compile(r"[0-9][A-Za-z0-9.*+!_-]{0,63}")
# PEP 503: runs of "-", "_" and "." are one separator.
_PIP_SEPARATORS = re.compile(r"[-_.]+")
_NPM_NAME = re.compile(r"(?:@[a-z0-9~][a-z0-9._~-]{0,100}/)?[a-z0-9~][a-z0-9._~-]{0,100}")
_NPM_RANGE = re.compile(r"[A-Za-z0-9.^~<>=*|+ x-]{1,64}")


def check(language: str, name: str, version: str) -> str | None:
    """Returns why a package is refused, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"a package name is at most {MAX_NAME_LENGTH} characters"
    if len(version) > MAX_VERSION_LENGTH:
        return f"a version is at most {MAX_VERSION_LENGTH} characters"
    if language == "python":
        if not _PIP_NAME.fullmatch(name):
            return "not a valid Python package name"
        if version and not (_PIP_SPECIFIER.fullmatch(version) or _PIP_BARE_VERSION.fullmatch(version)):
            return "not a version specifier (e.g. '==1.2', '>=2,<3')"
        return None
    if not _NPM_NAME.fullmatch(name) or len(name) > MAX_NPM_NAME_LENGTH:
        return "not a valid npm package name"
    if version and (not _NPM_RANGE.fullmatch(version) or version.startswith("-")):
        return "not a version range (e.g. '^1.2.0', '1.x')"
    return None


def refused_field(language: str, name: str) -> str:
    """Which of "name" and "version" a package that `check` refused is
    refused for."""
    return "version" if check(language, name, "") is None else "name"


def requirement(language: str, name: str, version: str) -> str:
    """What the installer is given: "six==1.16.0", "six>=1", "is-number@7"."""
    if language == "python":
        if version and _PIP_BARE_VERSION.fullmatch(version):
            return f"{name}=={version}"
        return f"{name}{version}"
    return f"{name}@{version}" if version else name


def package_key(language: str, name: str) -> str:
    """The key under which two entries are the same package.

    For Python the PEP 503 normalised project name without extras
    ("Foo_Bar[x]" and "foo.bar" are one package); npm names are lower-case
    by rule, so the name as given.
    """
    if language == "python":
        return _PIP_SEPARATORS.sub("-", name.split("[", 1)[0]).lower()
    return name
