import pytest

from services.spawner import packages


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


def test_install_commands_are_binary_only_and_scriptless_by_default():
    pip = packages.install_command("python", ["six"], allow_sdist=False, allow_scripts=False)
    assert pip[-3:] == ["--only-binary", ":all:", "six"]
    assert "--target" in pip
    assert "--only-binary" not in packages.install_command("python", ["six"], allow_sdist=True, allow_scripts=False)
    npm = packages.install_command("node", ["x"], allow_sdist=False, allow_scripts=False)
    assert "--ignore-scripts" in npm
    assert "--ignore-scripts" not in packages.install_command("node", ["x"], allow_sdist=False, allow_scripts=True)


def test_not_found_markers():
    assert packages.looks_not_found("ERROR: No matching distribution found for nopkg")
    assert packages.looks_not_found("npm ERR! code E404\nnpm ERR! 404 Not Found")
    assert not packages.looks_not_found("ERROR: Could not install packages due to an OSError")
