"""Parsing the runtime image's pip/npm configuration into allowlist entries
(made-up names only)."""

from __future__ import annotations

import json

import pytest

from services.egress.allowlist import MARKER, host_of, parse_probe_output


def probe(**data) -> str:
    return "some pip warning\n" + MARKER + json.dumps(data) + "\n"


def test_parses_index_extra_files_and_registries():
    out = probe(
        pip_index_urls=["https://Mirror.Test.Internal/simple/", "https://extra.test.internal:8443/x/simple"],
        pip_default_file_hosts=["files.test.internal"],
        npm_registries=["https://npm.test.internal/", "https://scoped.test.internal/npm/", "https://npm.test.internal"],
    )
    assert parse_probe_output(out) == [
        "mirror.test.internal",
        "extra.test.internal",
        "npm.test.internal",
        "scoped.test.internal",
        "files.test.internal",
    ]


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://user:pw@idx.test.internal:443/simple", "idx.test.internal"),
        ("http://idx.test.internal./simple", "idx.test.internal"),
        ("https://10.0.0.1/simple", None),
        ("https://[::1]/simple", None),
        ("file:///srv/wheels", None),
        ("/srv/wheels", None),
        ("", None),
        ("https://bad_name.test/", None),
    ],
)
def test_host_of(url, host):
    assert host_of(url) == host


def test_ip_literal_registries_are_dropped():
    assert parse_probe_output(probe(pip_index_urls=["https://192.0.2.1/simple"], npm_registries=[])) == []


def test_missing_marker():
    with pytest.raises(ValueError):
        parse_probe_output("Traceback ...\n")
