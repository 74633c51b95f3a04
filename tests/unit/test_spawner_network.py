"""services.spawner.network: what a sandbox with a network gets (proxy
settings at the egress's address on its network, the egress CA), its address
for the egress's admission, and how a failed call to the egress is reported."""

from __future__ import annotations

import docker
import pytest

from services.spawner.netpool import Lease
from services.spawner.network import EgressClient, EgressError, NetworkAccess, check_ca_volume

CA_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


class FakePool:
    def __init__(self):
        self.released = []

    def lease(self):
        return Lease("net-1", "192.168.64.3")

    def release(self, lease):
        self.released.append(lease)


POOL = FakePool()


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
    access = NetworkAccess(POOL, ca_cert="/srv/ca/egress-ca.pem")
    inside = "/etc/sandbox-mesh/egress-ca/egress-ca.pem"
    assert access.binds() == {"/srv/ca/egress-ca.pem": {"bind": inside, "mode": "ro"}}
    env = access.environment("exec-1", "tenant-a", "192.168.64.3")
    assert env["PIP_CERT"] == env["NODE_EXTRA_CA_CERTS"] == "/etc/sandbox-mesh/egress-ca/egress-ca.pem"


def test_ca_volume_mounted_instead_of_the_file():
    access = NetworkAccess(POOL, ca_cert="/var/lib/sandbox-mesh/egress-ca/egress-ca.pem", ca_volume="mesh-egress-ca")
    assert access.binds() == {"mesh-egress-ca": {"bind": "/etc/sandbox-mesh/egress-ca", "mode": "ro"}}
    env = access.environment("exec-1", "tenant-a", "192.168.64.3")
    assert env["SSL_CERT_FILE"] == "/etc/sandbox-mesh/egress-ca/egress-ca.pem"


def test_no_ca_no_binds():
    access = NetworkAccess(POOL, mint_token=lambda e, t: "tok/en")
    assert access.binds() == {}
    env = access.environment("exec-1", "tenant-a", "192.168.64.3")
    assert env["HTTPS_PROXY"] == "http://exec-1:tok%2Fen@192.168.64.3:3128" and "PIP_CERT" not in env
    assert env["https_proxy"] == env["HTTP_PROXY"] == env["npm_config_https_proxy"] == env["HTTPS_PROXY"]


def test_the_proxy_is_the_egress_address_on_the_network_not_a_name():
    access = NetworkAccess(POOL, proxy_port=8888)
    lease = access.lease()
    env = access.environment("exec-1", "tenant-a", lease.egress_address)
    assert env["HTTPS_PROXY"] == "http://192.168.64.3:8888"
    access.release(lease)
    assert POOL.released[-1] == lease


def test_address_of_the_sandbox_on_the_network():
    access = NetworkAccess(POOL)
    api = FakeApi({"sandbox-net": {"IPAddress": "172.30.0.5"}, "other": {"IPAddress": "10.9.0.2"}})
    assert access.address_of(api, "c1", "sandbox-net") == "172.30.0.5"
    assert access.address_of(FakeApi({"d0c1d": {"IPAddress": "172.30.0.6"}}), "c1", "sandbox-net") == "172.30.0.6"
    for networks in ({}, None, {"sandbox-net": {"IPAddress": ""}}):
        with pytest.raises(EgressError):
            access.address_of(FakeApi(networks), "c1", "sandbox-net")


def test_without_an_egress_admissions_are_no_ops():
    access = NetworkAccess(POOL)
    access.admit("exec-1", "172.30.0.5")
    access.admit_sandbox(FakeApi(networks={}), "c1", "exec-1", "sandbox-net")  # no address needed
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
