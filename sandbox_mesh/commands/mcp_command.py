"""`sandboxctl mcp`: serve the mesh's tools to an agent over MCP, as the
configured tenant (sandbox_mesh.mcp_server). stdio by default (the agent
starts us as its child); `--http` for streamable HTTP, on loopback unless
`--allow-remote`: whoever reaches the port calls the mesh as the tenant."""

from __future__ import annotations

import ipaddress

import click

from sandbox_mesh.commands.common import Settings, fail
from sandbox_mesh.display import EXIT_MESH, EXIT_USAGE
from sandbox_mesh.mcp_server import SandboxTools, build_server

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("mcp")
@click.option("--http", "use_http", is_flag=True, help="serve streamable HTTP (at /mcp) instead of stdio")
@click.option("--host", default="127.0.0.1", show_default=True, help="with --http: the address to listen on")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="with --http: the port"
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="with --http: allow a --host that is not loopback (anyone reaching it acts as the tenant)",
)
@click.pass_context
def mcp(ctx: click.Context, use_http: bool, host: str, port: int, allow_remote: bool) -> None:
    """Serve the mesh as MCP tools for agents, acting as the configured tenant.

    Tools: run_code, open_session, run_in_session, close_session,
    restart_session, list_sessions, put_file, get_file, list_files.
    Sessions opened here and still open are closed when the server stops."""
    settings: Settings = ctx.obj
    given = {name for name in ("host", "port", "allow_remote") if not is_default(ctx, name)}
    if given and not use_http:
        fail(f"--{sorted(given)[0].replace('_', '-')} is for --http only", EXIT_USAGE)
    if use_http and not is_loopback(host) and not allow_remote:
        fail(
            f"--host {host} is not a loopback address: anyone reaching it would act as the tenant; "
            "add --allow-remote to serve it anyway",
            EXIT_USAGE,
        )
    tools = SandboxTools(settings.client())
    server = build_server(tools, host=host, port=port)
    try:
        if use_http:
            click.echo(f"sandboxctl mcp: serving http://{host}:{port}/mcp as tenant {tools.client.tenant}", err=True)
            server.run("streamable-http")
        else:
            server.run("stdio")
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an HTTP server is stopped by hand; the sessions are closed below
    finally:
        failures = tools.close_opened()
        tools.client.close()
    for failure in failures:
        click.echo(f"sandboxctl mcp: {failure}", err=True)
    if failures:
        ctx.exit(EXIT_MESH)


def is_default(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (click.core.ParameterSource.DEFAULT, None)
