"""Execution rows to protobuf messages, a spawner's result to the JSON the
row keeps, and an admitted execution's request to its spawner."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from google.protobuf import json_format

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.contract.languages import as_language
from services.control.executions import states
from services.control.executions.models import ExecutionRow, StoredFile


def execution(row: ExecutionRow, files: list[StoredFile] | None = None, *, detail: bool = True) -> pb.Execution:
    message = pb.Execution(
        execution_id=row.execution_id,
        group_id=row.group_id,
        session_id=row.session_id,
        language=as_language(row.language),
        status=states.to_proto(row.status),
        error_code=states.error_code(row.error_code),
        error_message=row.error_message,
        exit_code=row.exit_code,
        timeout_ms=row.timeout_ms,
        usage=json_format.ParseDict(json.loads(row.usage_json), common.Usage()),
        dropped_output_files=json.loads(row.dropped_json),
        created_at_ms=row.created_at_ms,
        started_at_ms=row.started_at_ms,
        finished_at_ms=row.finished_at_ms,
        heartbeat_at_ms=row.heartbeat_at_ms,
        spawner=row.spawner,
        variant=row.variant,
        runtime=row.runtime,
        stdout_truncated=row.stdout_truncated,
        stderr_truncated=row.stderr_truncated,
    )
    if detail:
        message.stdout_preview = row.stdout_preview
        message.stderr_preview = row.stderr_preview
        for step in json.loads(row.steps_json):
            message.steps.append(json_format.ParseDict(step, common.StepResult()))
    for stored in files or ():
        message.output_files.append(pb.StoredFile(path=stored.path, size=stored.size, sha256=stored.sha256))
    return message


def usage_json(usage: common.Usage) -> str:
    return json.dumps(json_format.MessageToDict(usage, preserving_proto_field_name=True))


def steps_json(steps: Iterable[common.StepResult] | Iterable[common.Step]) -> str:
    return json.dumps([json_format.MessageToDict(s, preserving_proto_field_name=True) for s in steps])


def spawner_request(
    row: ExecutionRow, request: pb.ExecuteRequest, prior_outputs: Sequence[common.File]
) -> spb.ExecuteRequest:
    """The spawner's request for an admitted execution: control's key is the
    id the spawner sees; the timeout and the sandbox runtime are the
    admitted ones."""
    timeout_ms = row.timeout_ms
    return spb.ExecuteRequest(
        execution_id=row.key,
        tenant=row.tenant,
        language=request.language,
        files=request.files,
        entry=request.entry,
        steps=request.steps,
        packages=request.packages,
        limits=common.Limits(timeout_ms=timeout_ms, memory_bytes=request.limits.memory_bytes, cpus=request.limits.cpus),
        env=request.env,
        stdin=request.stdin,
        args=request.args,
        prior_outputs=prior_outputs,
        install=spb.InstallOptions(
            allow_sdist=request.install.allow_sdist,
            allow_install_scripts=request.install.allow_install_scripts,
        ),
        variant=request.variant,
        runtime=row.runtime,
    )
