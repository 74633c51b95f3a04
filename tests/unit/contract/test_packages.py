"""Package names and versions (services/common/contract/packages.py)."""

from __future__ import annotations

import pytest

from services.common.contract import packages


@pytest.mark.parametrize(
    "language, name, version",
    [
        ("python", "requests", ""),
        ("python", "zope.interface", ">=5,<7"),
        ("python", "uvicorn[standard]", "~=0.30"),
        ("python", "six", "1.16.0"),
        ("node", "is-number", ""),
        ("node", "@types/node", "^20.1.0"),
        ("node", "lodash", "4.x"),
        ("node", "left-pad", ">=1.0.0 <2.0.0 || 3"),
    ],
)
def test_accepted(language, name, version):
    assert packages.check(language, name, version) is None


@pytest.mark.parametrize(
    "language, name, version",
    [
        ("python", "-r", ""),
        ("python", "--extra-index-url", ""),
        ("python", "pkg @ file:///etc", ""),
        ("python", "./local", ""),
        ("python", "requests", "==1; python_version<'3'"),
        ("python", "requests", "@ http://x"),
        ("python", "a" * 200, ""),
        ("node", "Uppercase", ""),
        ("node", "github:user/repo", ""),
        ("node", "file:../x", ""),
        ("node", "lodash", "https://x/tarball.tgz"),
        ("node", "lodash", "--registry=x"),
        ("node", "lodash", "git+ssh://x"),
        ("node", "../../etc", ""),
    ],
)
def test_refused(language, name, version):
    assert packages.check(language, name, version) is not None


def test_requirements():
    assert packages.requirement("python", "six", "1.16.0") == "six==1.16.0"
    assert packages.requirement("python", "six", ">=1") == "six>=1"
    assert packages.requirement("node", "is-number", "7") == "is-number@7"
    assert packages.requirement("node", "is-number", "") == "is-number"


@pytest.mark.parametrize(
    "language, name, version, field",
    [
        ("python", "-r", "", "name"),
        ("python", "requests", "@ http://x", "version"),
        ("node", "Uppercase", "^1", "name"),
        ("node", "lodash", "--registry=x", "version"),
    ],
)
def test_refused_field_names_the_part_at_fault(language, name, version, field):
    assert packages.check(language, name, version) is not None
    assert packages.refused_field(language, name) == field


@pytest.mark.parametrize(
    "language, a, b",
    [
        ("python", "Foo_Bar", "foo-bar"),
        ("python", "foo.bar", "FOO-BAR"),
        ("python", "foo..bar", "foo_bar"),
        ("python", "requests[socks]", "requests"),
        ("python", "Requests[socks,security]", "requests[use_chardet_on_py3]"),
    ],
)
def test_package_key_same_package(language, a, b):
    assert packages.package_key(language, a) == packages.package_key(language, b)


@pytest.mark.parametrize(
    "language, a, b",
    [
        ("python", "foobar", "foo-bar"),
        ("python", "foo-bar", "foo-baz"),
        ("node", "foo_bar", "foo-bar"),
        ("node", "@scope/pkg", "pkg"),
    ],
)
def test_package_key_different_packages(language, a, b):
    assert packages.package_key(language, a) != packages.package_key(language, b)


def test_package_key_forms():
    assert packages.package_key("python", "Zope.Interface[test]") == "zope-interface"
    assert packages.package_key("node", "@types/node") == "@types/node"


def test_names_and_versions_have_a_length_cap():
    # Spaces around the operators are allowed, so only the cap bounds a specifier.
    assert packages.check("python", "six", "==1" + " " * (packages.MAX_VERSION_LENGTH - 3)) is None
    long_version = "==1" + " " * packages.MAX_VERSION_LENGTH
    assert packages.check("python", "six", long_version) is not None
    assert packages.refused_field("python", "six") == "version"
    assert packages.check("node", "a" * (packages.MAX_NAME_LENGTH + 1), "") is not None
