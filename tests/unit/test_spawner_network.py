"""services.spawner.network: what a sandbox on the package network gets
(proxy settings, the egress CA), its address for the egress's admission, and
how a failed call to the egress is reported."""

from __future__ import annotations

import docker
import pytest

from services.spawner.network import EgressClient, EgressError, NetworkAccess, check_ca_volume

CA_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


class FakeApi:
    def __init__(self, networks=None, volumes=()):
        self.networks = networks
        self.volumes = set(volumes)

    def inspect_container(self, container_id):
        return {"NetworkSettings": {"Networks": self.networks}}

    def inspect_volume(self, name):
        if name not in self.volumes:
            raise docker.errors.NotFound("no such volume")
        return {"Name": name}


def test_ca_file_bound_where_the_sandbox_trusts_it():
    access = NetworkAccess("sandbox-net", ca_cert="/srv/ca/egress-ca.pem")
    inside = "/etc/sandbox-mesh/egress-ca/egress-ca.pem"
    assert access.binds() == {"/srv/ca/egress-ca.pem": {"bind": inside, "mode": "ro"}}
    env = access.environment("exec-1", "tenant-a")
    assert env["PIP_CERT"] == env["NODE_EXTRA_CA_CERTS"] == "/etc/sandbox-mesh/egress-ca/egress-ca.pem"


def test_ca_volume_mounted_instead_of_the_file():
    access = NetworkAccess("sandbox-net", ca_cert="/var/lib/sandbox-mesh/egress-ca/egress-ca.pem",
                           ca_volume="mesh-egress-ca")
    assert access.binds() == {"mesh-egress-ca": {"bind": "/etc/sandbox-mesh/egress-ca", "mode": "ro"}}
    assert access.environment("exec-1", "tenant-a")["SSL_CERT_FILE"] == "/etc/sandbox-mesh/egress-ca/egress-ca.pem"


def test_no_ca_no_binds():
    access = NetworkAccess("sandbox-net", proxy_url="http://egress:3128", mint_token=lambda e, t: "tok/en")
    assert access.binds() == {}
    env = access.environment("exec-1", "tenant-a")
    assert env["HTTPS_PROXY"] == "http://exec-1:tok%2Fen@egress:3128" and "PIP_CERT" not in env


def test_address_of_the_sandbox_on_the_network():
    access = NetworkAccess("sandbox-net")
    api = FakeApi({"sandbox-net": {"IPAddress": "172.30.0.5"}, "other": {"IPAddress": "10.9.0.2"}})
    assert access.address_of(api, "c1") == "172.30.0.5"
    assert access.address_of(FakeApi({"d0c1d": {"IPAddress": "172.30.0.6"}}), "c1") == "172.30.0.6"
    for networks in ({}, None, {"sandbox-net": {"IPAddress": ""}}):
        with pytest.raises(EgressError):
            access.address_of(FakeApi(networks), "c1")


def test_without_an_egress_admissions_are_no_ops():
    access = NetworkAccess("sandbox-net")
    access.admit("exec-1", "172.30.0.5")
    access.admit_sandbox(FakeApi(networks={}), "c1", "exec-1")  # no address needed
    access.revoke("exec-1")
    assert access.denials("exec-1") == []


def test_an_unreachable_egress_is_a_stable_error(tmp_path):
    client = EgressClient(f"unix:{tmp_path / 'nobody.sock'}", b"s" * 32)
    with pytest.raises(EgressError, match=r"^the egress did not admit the execution$"):
        client.admit("exec-1", "172.30.0.5")
    with pytest.raises(EgressError, match="exec-1: the egress did not revoke its credentials"):
        client.revoke("exec-1")


def test_ca_volume_checked(tmp_path):
    cert = tmp_path / "egress-ca.pem"
    cert.write_text(CA_PEM)
    api = FakeApi(volumes={"mesh-egress-ca"})
    check_ca_volume(api, "mesh-egress-ca", str(cert))
    with pytest.raises(ValueError, match="no such Docker volume"):
        check_ca_volume(api, "missing", str(cert))
    (tmp_path / "mitmproxy-ca.pem").write_text(CA_PEM + KEY_PEM)
    with pytest.raises(ValueError, match="private key"):
        check_ca_volume(api, "mesh-egress-ca", str(cert))
