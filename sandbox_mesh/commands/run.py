"""`sandboxctl run`: a file or a folder, its entry or its steps, streamed."""

from __future__ import annotations

import pathlib
from typing import Any

import click

from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.commands.common import Settings, finish, follow, guarded, json_option, read_stdin, save_files
from sandbox_mesh.display import exit_code_for
from sandbox_mesh.request import build_request, parse_env, parse_step, stage


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("target", metavar="FILE|DIR", type=click.Path(exists=True, path_type=pathlib.Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--entry", help="the file to run, inside DIR (default main.py or index.js)")
@click.option(
    "--step",
    "steps",
    multiple=True,
    metavar="'FILE ARGS'",
    help="run these files in order instead of an entry, stopping at the first failure (repeat; shell quoting)",
)
@click.option("--pip", "pip", multiple=True, metavar="PKG", help="a pip package to install, e.g. requests==2.32.3")
@click.option("--npm", "npm", multiple=True, metavar="PKG", help="an npm package to install, e.g. lodash@4")
@click.option("--timeout", type=float, help="time limit in seconds (default: the mesh's)")
@click.option("--memory", help="memory limit, e.g. 256m, 1g (default: the mesh's)")
@click.option("--stdin", "stdin_source", metavar="FILE|-", help="give the program this file (or our stdin)")
@click.option("--env", "env", multiple=True, metavar="K=V", help="an environment variable for the program")
@click.option("--runtime", type=click.Choice(["runc", "gvisor"]), help="the sandbox runtime (default: the mesh's)")
@click.option("--group", default="", help="label it with this group (see `groups cancel`)")
@click.option("--out", type=click.Path(file_okay=False), help="where output files go [./outputs/<execution id>/]")
@json_option
@click.pass_obj
def run(settings: Settings, target: pathlib.Path, args: tuple[str, ...], **options: Any) -> None:
    """Run FILE (its extension gives the language) or DIR, streaming its output.

    Arguments after `--` go to the program. With --step, each step is a
    staged file and its own arguments: --step 'prep.py --fast' --step main.py."""
    guarded(lambda: run_program(settings, target, args, **options))


def run_program(
    settings: Settings,
    target: pathlib.Path,
    args: tuple[str, ...],
    *,
    out: str | None,
    as_json: bool,
    **options: Any,
) -> int:
    request = build_request_for(target, args, **options)
    with settings.client() as client:
        stream = client.execute_request(request)
        finished = follow(stream, as_json)
        saved, folder = 0, None
        if finished is not None and finished.output_files:
            folder = pathlib.Path(out) if out else pathlib.Path("outputs") / finished.execution_id
            execution_id = finished.execution_id
            saved = save_files(
                lambda path: client.output_chunks(execution_id, path), [f.path for f in finished.output_files], folder
            )
        finish(finished, folder, saved, as_json)
        assert finished is not None  # finish() raised otherwise
        return exit_code_for(finished)


def build_request_for(
    target: pathlib.Path,
    args: tuple[str, ...],
    *,
    entry: str | None,
    steps: tuple[str, ...],
    pip: tuple[str, ...],
    npm: tuple[str, ...],
    timeout: float | None,
    memory: str | None,
    stdin_source: str | None,
    env: tuple[str, ...],
    runtime: str | None,
    group: str,
) -> pb.ExecuteRequest:
    """`sandboxctl run`'s options as a request; UsageError names the option."""
    files, staged_entry = stage(target, entry, steps=bool(steps))
    return build_request(
        files,
        # With steps, only an --entry asked for is passed on (and refused).
        entry=(entry or None) if steps else staged_entry,
        steps=[parse_step(s) for s in steps],
        args=args,
        pip=pip,
        npm=npm,
        timeout=timeout,
        memory=memory,
        env=parse_env(env),
        stdin=read_stdin(stdin_source),
        runtime=runtime or "",
        group_id=group,
    )
