"""Execution rows to protobuf messages, and a spawner's result to the JSON
the row keeps."""

from __future__ import annotations

import json
from collections.abc import Iterable

from google.protobuf import json_format

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.languages import as_language
from services.control.executions import states
from services.control.executions.models import ExecutionRow, StoredFile


def execution(row: ExecutionRow, files: list[StoredFile] | None = None, *, detail: bool = True) -> pb.Execution:
    message = pb.Execution(
        execution_id=row.execution_id,
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
