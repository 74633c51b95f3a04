"""`sandboxctl artifacts ...`: artifacts (files kept by control under a
revision), their files and packages, their runs."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from typing import Any

import click

from sandbox_mesh.artifact_records import Artifact, Run
from sandbox_mesh.commands.common import (
    Settings,
    finish,
    follow,
    guarded,
    json_option,
    print_json,
    read_stdin,
    save_files,
)
from sandbox_mesh.display import Justify, exit_code_for, human_bytes, output_path, print_table
from sandbox_mesh.request import UsageError, parse_env, parse_step, read_folder

revision_option = click.option(
    "--revision", type=int, help="write only if the artifact is still at this revision (else ABORTED)"
)

ARTIFACT_COLUMNS: list[tuple[str, Justify]] = [
    ("ARTIFACT", "left"),
    ("LANGUAGE", "left"),
    ("REV", "right"),
    ("FILES", "right"),
    ("UPDATED (UTC)", "left"),
    ("TITLE", "left"),
]
RUN_COLUMNS: list[tuple[str, Justify]] = [
    ("RUN", "left"),
    ("REV", "right"),
    ("STATUS", "left"),
    ("ERROR", "left"),
    ("EXIT", "right"),
    ("STARTED (UTC)", "left"),
    ("RAN", "left"),
]


def when(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def show_artifact(artifact: Artifact) -> None:
    title = f" {artifact.title!r}" if artifact.title else ""
    click.echo(f"{artifact.artifact_id}{title} ({artifact.language}, revision {artifact.revision})")
    click.echo(f"  entry: {artifact.entry or '-'}")
    packages = ", ".join(p.spec(artifact.language) for p in artifact.packages)
    click.echo(f"  packages: {packages or '-'}")
    click.echo(f"  files: {artifact.file_count} ({human_bytes(artifact.total_bytes)})")


@click.group()
def artifacts() -> None:
    """Create artifacts, put and get their files, run them."""


@artifacts.command("create")
@click.option("--language", type=click.Choice(["python", "node"]), required=True)
@click.option("--title", default="", help="at most 200 characters")
@click.option("--entry", default="", help="the file runs start by default (may be put later)")
@click.option("--pip", "pip", multiple=True, metavar="PKG")
@click.option("--npm", "npm", multiple=True, metavar="PKG")
@json_option
@click.pass_obj
def artifacts_create(settings: Settings, as_json: bool, **options: Any) -> None:
    """A new artifact at revision 1, without files; prints its id."""

    def action() -> None:
        with settings.client() as client:
            artifact = client.artifacts.create(**options)
        if as_json:
            print_json(dataclasses.asdict(artifact))
        else:
            click.echo(artifact.artifact_id)

    guarded(action)


@artifacts.command("ls")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per artifact")
@click.pass_obj
def artifacts_ls(settings: Settings, limit: int, as_json: bool) -> None:
    """Artifacts, newest first."""

    def action() -> None:
        with settings.client() as client:
            found = list(client.artifacts.list(limit=limit))
        if as_json:
            for artifact in found:
                print_json(dataclasses.asdict(artifact))
            return
        print_table(
            ARTIFACT_COLUMNS,
            (
                [a.artifact_id, a.language, str(a.revision), str(a.file_count), when(a.updated_at_ms), a.title]
                for a in found
            ),
        )

    guarded(action)


@artifacts.command("show")
@click.argument("artifact_id")
@json_option
@click.pass_obj
def artifacts_show(settings: Settings, artifact_id: str, as_json: bool) -> None:
    """An artifact and its files."""

    def action() -> None:
        with settings.client() as client:
            artifact = client.artifacts.get(artifact_id)
            listing = client.artifacts.files(artifact_id)
        if as_json:
            print_json({**dataclasses.asdict(artifact), "files": [dataclasses.asdict(f) for f in listing.files]})
            return
        show_artifact(artifact)
        for f in listing.files:
            click.echo(f"    {f.path} ({human_bytes(f.size)}, revision {f.modified_revision})")

    guarded(action)


@artifacts.command("put")
@click.argument("artifact_id")
@click.argument("local", metavar="FILE|DIR", type=click.Path(exists=True, path_type=pathlib.Path))
@click.argument("path", required=False)
@revision_option
@json_option
@click.pass_obj
def artifacts_put(
    settings: Settings, artifact_id: str, local: pathlib.Path, path: str | None, revision: int | None, as_json: bool
) -> None:
    """Put FILE into the artifact as PATH (default its name), or every file
    of DIR (dotfiles skipped) under PATH; existing files are replaced.
    Each file is one write (one revision)."""

    def action() -> None:
        if local.is_dir():
            prefix = f"{path.strip('/')}/" if path else ""
            files = {prefix + name: content for name, content in read_folder(local).items()}
        else:
            files = {path or local.name: local.read_bytes()}
        written = []
        expected = revision
        with settings.client() as client:
            for name, content in files.items():
                artifact, stored = client.artifacts.put(artifact_id, name, content, revision=expected)
                # Each write bumps the revision by one: the next expects it.
                expected = artifact.revision if revision is not None else None
                written.append(stored)
                if not as_json:
                    click.echo(f"{stored.path} ({human_bytes(stored.size)}) -> revision {artifact.revision}")
        if as_json:
            print_json({"artifact_id": artifact_id, "files": [dataclasses.asdict(f) for f in written]})

    guarded(action)


@artifacts.command("get")
@click.argument("artifact_id")
@click.argument("path", required=False)
@click.option("--out", type=click.Path(file_okay=False), help="the folder to write into [./artifacts/<artifact id>/]")
@json_option
@click.pass_obj
def artifacts_get(settings: Settings, artifact_id: str, path: str | None, out: str | None, as_json: bool) -> None:
    """Write the artifact's files (or only PATH) under --out; nothing
    outside it (a path with `..`, absolute or through a symlink is refused)."""

    def action() -> None:
        folder = pathlib.Path(out) if out else pathlib.Path("artifacts") / artifact_id
        if path is not None:
            try:
                output_path(folder, path)
            except ValueError as exc:
                raise UsageError("PATH", str(exc)) from None
        with settings.client() as client:
            paths = [path] if path is not None else [f.path for f in client.artifacts.files(artifact_id).files]
            save_files(lambda p: [client.artifacts.read(artifact_id, p)[0]], paths, folder)
        if as_json:
            print_json({"artifact_id": artifact_id, "folder": str(folder), "files": paths})
            return
        for written in paths:
            click.echo(str(folder / written))

    guarded(action)


@artifacts.command("rm")
@click.argument("artifact_id")
@click.argument("path")
@revision_option
@click.pass_obj
def artifacts_rm(settings: Settings, artifact_id: str, path: str, revision: int | None) -> None:
    """Delete the file PATH (not the entry: point it elsewhere first)."""

    def action() -> None:
        with settings.client() as client:
            artifact = client.artifacts.remove(artifact_id, path, revision=revision)
        click.echo(f"removed {path} -> revision {artifact.revision}")

    guarded(action)


@artifacts.command("mv")
@click.argument("artifact_id")
@click.argument("path")
@click.argument("new_path")
@revision_option
@click.pass_obj
def artifacts_mv(settings: Settings, artifact_id: str, path: str, new_path: str, revision: int | None) -> None:
    """Rename the file PATH to NEW_PATH (the entry follows it)."""

    def action() -> None:
        with settings.client() as client:
            artifact = client.artifacts.rename(artifact_id, path, new_path, revision=revision)
        click.echo(f"renamed {path} to {new_path} -> revision {artifact.revision}")

    guarded(action)


@artifacts.command("packages")
@click.argument("artifact_id")
@click.option("--pip", "pip", multiple=True, metavar="PKG", help="add (or replace) a pip package")
@click.option("--npm", "npm", multiple=True, metavar="PKG", help="add (or replace) an npm package")
@revision_option
@json_option
@click.pass_obj
def artifacts_packages(
    settings: Settings,
    artifact_id: str,
    pip: tuple[str, ...],
    npm: tuple[str, ...],
    revision: int | None,
    as_json: bool,
) -> None:
    """The artifact's packages; with --pip/--npm, add them first."""

    def action() -> None:
        with settings.client() as client:
            if pip or npm:
                artifact = client.artifacts.add_packages(artifact_id, pip=pip, npm=npm, revision=revision)
            else:
                artifact = client.artifacts.get(artifact_id)
        if as_json:
            print_json(
                {
                    "artifact_id": artifact_id,
                    "revision": artifact.revision,
                    "packages": [dataclasses.asdict(p) for p in artifact.packages],
                }
            )
            return
        for package in artifact.packages:
            click.echo(package.spec(artifact.language))

    guarded(action)


@artifacts.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("artifact_id")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--path", default="", help="the file to run (default: the artifact's entry)")
@click.option("--step", "steps", multiple=True, metavar="'FILE ARGS'", help="run these files in order (repeat)")
@click.option(
    "--inputs",
    default="latest",
    show_default=True,
    metavar="latest|none|RUN_ID",
    help="whose output files are pre-staged into /workspace/output/",
)
@click.option("--timeout", type=float, help="time limit in seconds (default: the mesh's)")
@click.option("--memory", help="memory limit, e.g. 256m, 1g (default: the mesh's)")
@click.option("--stdin", "stdin_source", metavar="FILE|-", help="give the program this file (or our stdin)")
@click.option("--env", "env", multiple=True, metavar="K=V", help="an environment variable for the program")
@click.option("--group", default="", help="label the run with this group (see `groups cancel`)")
@click.option("--out", type=click.Path(file_okay=False), help="where output files go [./outputs/<run id>/]")
@json_option
@click.pass_obj
def artifacts_run(settings: Settings, artifact_id: str, args: tuple[str, ...], **options: Any) -> None:
    """Run the artifact as it is now, streaming like `run` (same exit codes).

    Arguments after `--` go to the program."""
    guarded(lambda: run_artifact(settings, artifact_id, args, **options))


def run_artifact(
    settings: Settings,
    artifact_id: str,
    args: tuple[str, ...],
    *,
    path: str,
    steps: tuple[str, ...],
    inputs: str,
    timeout: float | None,
    memory: str | None,
    stdin_source: str | None,
    env: tuple[str, ...],
    group: str,
    out: str | None,
    as_json: bool,
) -> int:
    if steps and (path or args):
        raise UsageError("--step", "either steps or --path with arguments, not both")
    with settings.client() as client:
        stream = client.artifacts.execute(
            artifact_id,
            path=path,
            steps=[parse_step(s) for s in steps],
            inputs=inputs,
            args=args,
            timeout=timeout,
            memory=memory,
            env=parse_env(env),
            stdin=read_stdin(stdin_source),
            group_id=group,
        )
        finished = follow(stream, as_json)
        saved, folder = 0, None
        if finished is not None and finished.output_files:
            run_id = finished.execution_id
            folder = pathlib.Path(out) if out else pathlib.Path("outputs") / run_id
            paths = [f.path for f in finished.output_files]
            saved = save_files(lambda p: client.artifacts.output_chunks(run_id, p), paths, folder)
        finish(finished, folder, saved, as_json)
        assert finished is not None  # finish() raised otherwise
        return exit_code_for(finished)


def run_json(run: Run) -> dict[str, Any]:
    return dataclasses.asdict(run)


@artifacts.command("runs")
@click.argument("artifact_id")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per run")
@click.pass_obj
def artifacts_runs(settings: Settings, artifact_id: str, limit: int, as_json: bool) -> None:
    """The artifact's runs, newest first (`executions show RUN_ID` and
    `executions logs RUN_ID` work on a run too)."""

    def action() -> None:
        with settings.client() as client:
            found = list(client.artifacts.runs(artifact_id, limit=limit))
        if as_json:
            for run in found:
                print_json(run_json(run))
            return
        rows = []
        for r in found:
            e = r.execution
            ran = r.path or " ; ".join(" ".join(step) for step in r.steps)
            stale = " (stale)" if r.stale else ""
            started = when(r.created_at_ms)
            rows.append(
                [r.run_id, str(r.revision), e.status, e.error_code or "-", str(e.exit_code), started, ran + stale]
            )
        print_table(
            RUN_COLUMNS,
            rows,
        )

    guarded(action)
