"""The "datascience" variant: Python with numpy, pandas, scipy and matplotlib
preinstalled (sandbox-mesh/runtime-datascience:local), with no packages to
install and no network; and the variant refused where a language has none."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from tests.integration.conftest import labelled_containers
from tests.integration.helpers import collect, execute, request

pytestmark = pytest.mark.integration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ANALYSIS = """
import os
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

frame = pd.DataFrame({"x": np.arange(1, 11), "y": np.arange(1, 11) * 2.0 + 1})
fit = stats.linregress(frame["x"], frame["y"])
print(f"mean y {frame['y'].mean():.1f}")
print(f"slope {fit.slope:.3f} intercept {fit.intercept:.3f} r {fit.rvalue:.3f}")
print("backend", matplotlib.get_backend().lower())

figure, axes = plt.subplots(figsize=(4, 3))
axes.plot(frame["x"], frame["y"], marker="o")
axes.set_title("y = 2x + 1")
os.makedirs("/workspace/output", exist_ok=True)
figure.savefig("/workspace/output/chart.png")
"""


def _output_files(outcome) -> dict[str, bytes]:
    files: dict[str, bytearray] = {}
    for event in outcome.events:
        if event.WhichOneof("event") == "output_file":
            files.setdefault(event.output_file.path, bytearray()).extend(event.output_file.content)
    return {path: bytes(content) for path, content in files.items()}


def test_the_stack_is_preinstalled_and_plots_headless(stub, datascience_image):
    req = request({"analysis.py": ANALYSIS}, variant="datascience", timeout_ms=60_000)
    assert not req.packages and not req.network
    outcome = execute(stub, req)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, (outcome.result, outcome.stderr)
    assert outcome.stdout.decode().splitlines() == [
        "mean y 12.0",
        "slope 2.000 intercept 1.000 r 1.000",
        "backend agg",
    ]
    assert outcome.result.usage.install_ms == 0  # nothing was installed
    assert [f.path for f in outcome.result.output_files] == ["chart.png"]
    chart = _output_files(outcome)["chart.png"]
    assert chart.startswith(PNG_SIGNATURE) and len(chart) > 1000
    assert outcome.result.output_files[0].size == len(chart)


def test_the_standard_image_lacks_the_stack(stub):
    outcome = execute(stub, request({"main.py": "import numpy"}))
    assert outcome.result.status == common.EXECUTION_STATUS_FAILED
    assert b"No module named 'numpy'" in outcome.stderr


def test_node_has_no_datascience_variant(stub, docker_api, spawner_name, workspace_root, spawner_server):
    assert spawner_server.spawner.provisioner.wait_removed(10)  # what earlier tests ran is gone
    req = request({"main.js": "console.log(1)"}, language="node", variant="datascience")
    with pytest.raises(grpc.RpcError) as refused:
        collect(stub.Execute(req, timeout=30))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("variant:"), refused.value.details()
    bad_request = error_details_pb2.BadRequest()
    assert rpc_status.from_call(refused.value).details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "variant"
    assert labelled_containers(docker_api, spawner_name) == []
    assert list(pathlib.Path(workspace_root).iterdir()) == []


def test_info_names_the_variant_image(stub, datascience_image):
    images = stub.Info(pb.InfoRequest(), timeout=10).runtime_images
    assert images["python-datascience"] == datascience_image
    assert images["python"] and images["node"]
