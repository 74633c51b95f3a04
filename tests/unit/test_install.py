"""Installer command lines and failures (services/spawner/install.py)."""

from __future__ import annotations

from services.spawner import install


def test_install_commands_are_binary_only_and_scriptless_by_default():
    pip = install.install_command("python", ["six"], allow_sdist=False, allow_scripts=False)
    assert pip[-3:] == ["--only-binary", ":all:", "six"]
    assert "--target" in pip
    assert "--only-binary" not in install.install_command("python", ["six"], allow_sdist=True, allow_scripts=False)
    npm = install.install_command("node", ["x"], allow_sdist=False, allow_scripts=False)
    assert "--ignore-scripts" in npm
    assert "--ignore-scripts" not in install.install_command("node", ["x"], allow_sdist=False, allow_scripts=True)


def test_not_found_markers():
    assert install.looks_not_found("ERROR: No matching distribution found for nopkg")
    assert install.looks_not_found("npm ERR! code E404\nnpm ERR! 404 Not Found")
    assert not install.looks_not_found("ERROR: Could not install packages due to an OSError")


def test_installers_unpack_into_the_workspace_not_the_small_tmp():
    assert install.install_environment()["TMPDIR"].startswith("/workspace/")
