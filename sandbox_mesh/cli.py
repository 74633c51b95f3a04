"""sandboxctl: run code on the mesh and look at what ran.

    sandboxctl run hello.py
    sandboxctl run ./project --entry app.py --pip requests -- --verbose
    sandboxctl run ./project --step 'prep.py --fast' --step main.py
    sandboxctl executions ls | show ID | cancel ID | logs ID
    sandboxctl groups cancel GROUP
    sandboxctl outputs get EXECUTION_ID [PATH] [--out DIR]
    sandboxctl artifacts create|ls|show|put|get|rm|mv|packages|run|runs
    sandboxctl session [ID]    (a live interpreter at a prompt)
    sandboxctl session run ID FILE | create | ls | show ID | close ID
    sandboxctl sign Control/GetQuota
    sandboxctl quota
    sandboxctl doctor
    sandboxctl mcp [--http [--host 127.0.0.1] [--port 8765]]

Exit codes: the program's own, else 124 (time limit), 125 (the mesh refused
or failed the request), 130 (cancelled, Ctrl-C), 2 (a usage mistake).
"""

from __future__ import annotations

import pathlib
import sys

import click

from sandbox_mesh import config, doctor
from sandbox_mesh.commands.artifacts import artifacts
from sandbox_mesh.commands.common import Settings, print_json
from sandbox_mesh.commands.executions import executions, groups, outputs, quota
from sandbox_mesh.commands.mcp_command import mcp
from sandbox_mesh.commands.run import run
from sandbox_mesh.commands.sessions import session
from sandbox_mesh.commands.sign import sign


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help="control's address [SANDBOX_URL, config file, default 127.0.0.1:50061]")
@click.option("--tenant", help="the tenant to call as [SANDBOX_TENANT, config file, default demo]")
@click.option(
    "--key", help="the tenant's key [SANDBOX_KEY, config file, else CONTROL_TENANT_KEYS in the environment or .env]"
)
@click.pass_context
def main(ctx: click.Context, url: str | None, tenant: str | None, key: str | None) -> None:
    """Run code in the Sandbox mesh and look at what ran.

    Settings come from flags, else SANDBOX_URL, SANDBOX_TENANT and
    SANDBOX_KEY, else the config file ($SANDBOX_CONFIG, else
    ~/.config/sandbox-mesh/config.toml: url, tenant, key or key_file), else
    a local `make up` mesh and its .env.

    Exit codes: 0 done; 2 a usage mistake; 125 the mesh refused or failed
    the call (one line naming the gRPC status and the field); for run and
    artifacts run the program's own code, 124 its time limit, 130 cancelled."""
    ctx.obj = Settings(url, tenant, key)


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="one JSON object with every check")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=pathlib.Path), help="[the nearest .env]")
@click.option(
    "--workspace-root",
    type=click.Path(path_type=pathlib.Path),
    envvar="SPAWNER_WORKSPACE_ROOT",
    default=doctor.DEFAULT_WORKSPACE_ROOT,
    show_default=True,
    help="where sandbox workspaces live [SPAWNER_WORKSPACE_ROOT]",
)
@click.option("--spawner", default=doctor.DEFAULT_SPAWNER, show_default=True, help="the spawner's address")
@click.pass_obj
def doctor_command(
    settings: Settings, as_json: bool, env_file: pathlib.Path | None, workspace_root: pathlib.Path, spawner: str
) -> None:
    """Check the engine, images, runtimes, secrets, disk, clock and the mesh.

    Exits 1 when a check fails (warnings do not)."""
    inputs = doctor.Inputs(
        url=settings.url,
        tenant=settings.tenant,
        key=settings.key,
        env_file=env_file if env_file is not None else config.find_env_file(),
        workspace_root=workspace_root,
        spawner=spawner,
    )
    checks = doctor.run_checks(inputs)
    if as_json:
        print_json(doctor.as_json(checks))
    else:
        for check in checks:
            click.echo(doctor.format_check(check))
    sys.exit(doctor.exit_code(checks))


for command in (run, executions, groups, outputs, artifacts, session, quota, sign, mcp):
    main.add_command(command)


if __name__ == "__main__":
    main()
