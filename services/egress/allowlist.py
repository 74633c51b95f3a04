"""The default allowlist: the hosts the runtime image's own pip and npm use.

Where ``EGRESS_ALLOW_HOSTS`` is unset, the egress asks the runtime image itself
(one throw-away container, no network) which index and registry URLs its pip
and npm are configured with, so an image pointed at a private mirror is
allowlisted automatically and no registry host name is ever written down here.
pip's built-in default index and its file host come from pip's own code.

    python -m services.egress.allowlist [IMAGE]   # prints the comma-separated list
"""

from __future__ import annotations

import json
import sys
import urllib.parse

import docker

from services.egress.policy import Allowlist, Decision, normalize_host

LABEL_ROLE = "sandbox-mesh.role"
ROLE = "egress-allowlist"
MARKER = "EGRESS-ALLOWLIST-JSON:"
# Docker API timeout; it bounds the wait for the probe container to finish.
PROBE_TIMEOUT_SECONDS = 120

# Runs inside the runtime image with its own python3, pip and npm. pip's
# internals are imported inside the try: the image may lack pip or have one
# whose internals moved, and npm must still be asked.
PROBE = r"""
import json, subprocess
NPM_TIMEOUT_SECONDS = 60
out = {"pip_index_urls": [], "pip_default_file_hosts": [], "npm_registries": []}
try:
    from pip._internal.configuration import Configuration
    from pip._internal.models.index import PyPI
    config = Configuration(isolated=False)
    config.load()
    index, extra = None, []
    for key, value in config.items():
        name = key.split(".", 1)[-1]
        if name == "index-url":
            index = value
        elif name == "extra-index-url":
            extra += value.split()
    if index is None:
        index = PyPI.simple_url
    if index.rstrip("/") == PyPI.simple_url.rstrip("/"):
        out["pip_default_file_hosts"].append(PyPI.file_storage_domain)
    out["pip_index_urls"] = [index] + extra
except Exception as exc:
    out["pip_error"] = repr(exc)
try:
    def npm(*args):
        return subprocess.run(["npm", *args], capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS).stdout
    listing = json.loads(npm("config", "list", "--json") or "{}")
    registries = [listing.get("registry") or npm("config", "get", "registry").strip()]
    registries += [v for k, v in listing.items() if k.endswith(":registry") and isinstance(v, str)]
    out["npm_registries"] = [r for r in registries if r]
except Exception as exc:
    out["npm_error"] = repr(exc)
print("EGRESS-ALLOWLIST-JSON:" + json.dumps(out))
"""


def host_of(url: str) -> str | None:
    """The normalised host of an index/registry URL, or None (IP literals,
    relative paths and non-HTTP schemes are not allowlistable)."""
    try:
        parsed = urllib.parse.urlsplit(url.strip())
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    normal = normalize_host(parsed.hostname)
    return None if isinstance(normal, Decision) else normal


def parse_probe_output(output: str) -> list[str]:
    """Host names from the probe's output, deduplicated, in order."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError("the runtime image printed no allowlist probe result")
    hosts: list[str] = []
    candidates = [host_of(u) for u in data.get("pip_index_urls", []) + data.get("npm_registries", [])]
    for name in data.get("pip_default_file_hosts", []):
        normal = normalize_host(name)
        candidates.append(None if isinstance(normal, Decision) else normal)
    for host in candidates:
        if host and host not in hosts:
            hosts.append(host)
    Allowlist.parse(hosts)  # every entry must be a valid allowlist entry
    return hosts


def derive(image: str, api=None, timeout: int = PROBE_TIMEOUT_SECONDS) -> list[str]:
    """Runs the probe in ``image`` (no network, removed afterwards)."""
    client = docker.DockerClient(version="auto", timeout=timeout) if api is None else api
    try:
        output = client.containers.run(
            image,
            ["python3", "-c", PROBE],
            network_mode="none",
            remove=True,
            labels={LABEL_ROLE: ROLE},
            stdout=True,
            stderr=False,
        )
    finally:
        if api is None:
            client.close()
    hosts = parse_probe_output(output.decode("utf-8", "replace"))
    if not hosts:
        raise ValueError(f"{image}: pip and npm name no registry hosts")
    return hosts


def main(argv: list[str]) -> int:
    image = argv[1] if len(argv) > 1 else "sandbox-mesh/runtime:local"
    print(",".join(derive(image)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
