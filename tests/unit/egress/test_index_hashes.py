"""The hashes package indexes publish, read from PEP 503 HTML, PEP 691 JSON
and npm package documents; anything else or malformed gives none."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from services.egress.index_hashes import (
    KnownHashes,
    from_index,
    from_npm_document,
    from_simple_html,
    from_simple_json,
    normalize_url,
)

PAGE = "https://pkgs.test.internal/simple/demo/"
SHA256 = hashlib.sha256(b"demo").hexdigest()
SHA512 = hashlib.sha512(b"demo").hexdigest()


def test_simple_html_links_with_hashes():
    html = f"""<!DOCTYPE html><html><body>
      <a href="../../files/demo-1.0.tar.gz#sha256={SHA256.upper()}">demo-1.0.tar.gz</a>
      <a href="https://files.test.internal:443/d/demo-1.0-py3-none-any.whl#sha512={SHA512}"
         data-requires-python="&gt;=3.8">wheel</a>
      <a href="/files/demo-0.9.tar.gz">no hash</a>
      <a href="/files/demo-0.8.tar.gz#md5=0123456789abcdef0123456789abcdef">md5 is not used</a>
      <a href="/files/demo-0.7.tar.gz#sha256=nothex">malformed</a>
    </body></html>"""
    assert from_simple_html(PAGE, html) == {
        "https://pkgs.test.internal/files/demo-1.0.tar.gz": ("sha256", SHA256),
        "https://files.test.internal/d/demo-1.0-py3-none-any.whl": ("sha512", SHA512),
    }


def test_simple_json_files_strongest_hash():
    document = {
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "files": [
            {"filename": "demo-1.0.tar.gz", "url": "../../files/demo-1.0.tar.gz", "hashes": {"sha256": SHA256}},
            {
                "filename": "b.whl",
                "url": "https://files.test.internal/b.whl",
                "hashes": {"sha256": SHA256, "sha512": SHA512},
            },
            {"filename": "c.whl", "url": "https://files.test.internal/c.whl", "hashes": {}},
            {"filename": "d.whl", "hashes": {"sha256": SHA256}},
            "garbage",
        ],
    }
    assert from_simple_json(PAGE, document) == {
        "https://pkgs.test.internal/files/demo-1.0.tar.gz": ("sha256", SHA256),
        "https://files.test.internal/b.whl": ("sha512", SHA512),
    }


def integrity(algorithm: str, data: bytes) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def test_npm_document_integrity():
    document = {
        "name": "demo",
        "versions": {
            "1.0.0": {
                "dist": {
                    "tarball": "https://npm.test.internal/demo/-/demo-1.0.0.tgz",
                    "integrity": integrity("sha512", b"demo"),
                    "shasum": "0" * 40,
                }
            },
            "0.9.0": {"dist": {"tarball": "https://npm.test.internal/demo/-/demo-0.9.0.tgz", "shasum": "0" * 40}},
            "0.8.0": {
                "dist": {
                    "tarball": "https://npm.test.internal/demo/-/demo-0.8.0.tgz",
                    "integrity": "sha512-not base64!",
                }
            },
            "0.7.0": "garbage",
        },
    }
    assert from_npm_document(document) == {"https://npm.test.internal/demo/-/demo-1.0.0.tgz": ("sha512", SHA512)}


def test_npm_integrity_keeps_the_strongest_of_several():
    value = f"{integrity('sha256', b'demo')} {integrity('sha512', b'demo')}"
    document = {"versions": {"1": {"dist": {"tarball": "https://npm.test.internal/a/-/a-1.tgz", "integrity": value}}}}
    assert from_npm_document(document) == {"https://npm.test.internal/a/-/a-1.tgz": ("sha512", SHA512)}


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("text/html; charset=utf-8", f'<a href="/f/a-1.tar.gz#sha256={SHA256}">a</a>'.encode(), 1),
        (
            "application/vnd.pypi.simple.v1+json",
            json.dumps({"files": [{"url": "/f/a.whl", "hashes": {"sha256": SHA256}}]}).encode(),
            1,
        ),
        (
            "application/json",
            json.dumps(
                {
                    "versions": {
                        "1": {"dist": {"tarball": "https://n/a/-/a-1.tgz", "integrity": integrity("sha512", b"x")}}
                    }
                }
            ).encode(),
            1,
        ),
        ("application/vnd.npm.install-v1+json", b"{not json", 0),
        ("application/octet-stream", f'<a href="/f/a-1.tar.gz#sha256={SHA256}">a</a>'.encode(), 0),
        ("application/json", b"[1, 2]", 0),
    ],
)
def test_from_index_by_content_type(content_type, body, expected):
    assert len(from_index(PAGE, content_type, body)) == expected


def test_normalize_url():
    assert normalize_url("HTTPS://Files.Test.Internal:443/a/b.whl#sha256=x") == "https://files.test.internal/a/b.whl"
    assert normalize_url("https://files.test.internal:8443/a?x=1") == "https://files.test.internal:8443/a?x=1"
    assert normalize_url("https://files.test.internal:99999/a") == ""


def test_known_hashes_bounded_oldest_first():
    known = KnownHashes(max_entries=2)
    known.add({"a": ("sha256", SHA256), "b": ("sha256", SHA256)})
    known.add({"c": ("sha256", SHA256)})
    assert (known.get("a"), len(known)) == (None, 2)
    assert known.get("c") == ("sha256", SHA256)
