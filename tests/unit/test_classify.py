"""Classification is by facts, in a fixed order of precedence."""

import pytest

from sandbox.common.v1 import execution_pb2 as common
from services.spawner.classify import Facts, classify
from services.spawner.outputs import Drop, DropKind

C = common.ErrorCode
S = common.ExecutionStatus


@pytest.mark.parametrize(
    "facts, status, code",
    [
        (Facts(), S.EXECUTION_STATUS_COMPLETED, C.ERROR_CODE_UNSPECIFIED),
        (Facts(kill=(C.ERROR_CODE_TIMEOUT, "t")), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_TIMEOUT),
        (Facts(kill=(C.ERROR_CODE_CANCELLED, "c")), S.EXECUTION_STATUS_CANCELLED, C.ERROR_CODE_CANCELLED),
        (
            Facts(kill=(C.ERROR_CODE_OUTPUT_LIMIT, "o"), oom_kills=1, failed_step=(0, "a", 137)),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_OUTPUT_LIMIT,
        ),
        (Facts(oom_kills=1, failed_step=(0, "a", 137)), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_MEMORY_LIMIT),
        (Facts(engine_oom=True, failed_step=(0, "a", 137)), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_MEMORY_LIMIT),
        # A child was OOM-killed but the program handled it and exited 0.
        (Facts(oom_kills=1), S.EXECUTION_STATUS_COMPLETED, C.ERROR_CODE_UNSPECIFIED),
        (Facts(failed_step=(0, "a", 1)), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_RUNTIME_ERROR),
        (Facts(install_failed=True, install_not_found=True), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_PACKAGE_NOT_FOUND),
        # The egress went away under the install (it restarted, or did not
        # answer): not the packages' fault, whatever the installer said.
        (
            Facts(install_failed=True, install_not_found=True, egress_lost=True),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_SPAWNER_UNAVAILABLE,
        ),
        # A program that failed while the egress was gone is still its own failure.
        (Facts(failed_step=(0, "a", 1), egress_lost=True), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_RUNTIME_ERROR),
        (
            Facts(install_failed=True, egress_denials=("x: off the list",)),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_EGRESS_DENIED,
        ),
        (
            Facts(failed_step=(0, "a", 1), egress_denials=("x: off the list",)),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_EGRESS_DENIED,
        ),
        # A denial that did not make anything fail does not fail the run.
        (Facts(egress_denials=("x: off the list",)), S.EXECUTION_STATUS_COMPLETED, C.ERROR_CODE_UNSPECIFIED),
        (Facts(outputs_dropped=2, outputs_over_caps=2), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_OUTPUT_LIMIT),
        (
            Facts(failed_step=(0, "a", 1), outputs_dropped=2, outputs_over_caps=2),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_RUNTIME_ERROR,
        ),
        # A program or install that failed with its workspace full failed for want of space.
        (
            Facts(failed_step=(0, "a", 1), workspace_exhausted="full"),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_OUTPUT_LIMIT,
        ),
        (Facts(install_failed=True, workspace_exhausted="full"), S.EXECUTION_STATUS_FAILED, C.ERROR_CODE_OUTPUT_LIMIT),
        (
            Facts(oom_kills=1, failed_step=(0, "a", 137), workspace_exhausted="full"),
            S.EXECUTION_STATUS_FAILED,
            C.ERROR_CODE_MEMORY_LIMIT,
        ),
        # A full workspace that did not make anything fail does not fail the run.
        (Facts(workspace_exhausted="full"), S.EXECUTION_STATUS_COMPLETED, C.ERROR_CODE_UNSPECIFIED),
    ],
)
def test_precedence(facts, status, code):
    verdict = classify(facts)
    assert (verdict.status, verdict.error_code) == (status, code)


def test_runtime_error_names_the_step():
    assert classify(Facts(failed_step=(1, "validate.py", 1), step_count=3)).message == "step 2/3 validate.py exited 1"
    assert classify(Facts(failed_step=(0, "main.py", 3), step_count=1)).message == "main.py exited 3"


def test_output_limit_names_the_files_a_cap_dropped():
    drops = (
        Drop("link", DropKind.SYMLINK, "symlink"),
        Drop("big.bin", DropKind.OVER_FILE_SIZE, "over the per-file cap of 10 bytes"),
    )
    verdict = classify(Facts(outputs_dropped=2, outputs_over_caps=1, output_drops=drops))
    assert verdict.error_code == C.ERROR_CODE_OUTPUT_LIMIT
    assert verdict.message == "2 output files dropped: big.bin (over the per-file cap of 10 bytes)"


def test_drops_that_are_not_caps_do_not_fail_the_run():
    drops = (Drop("link", DropKind.SYMLINK, "symlink"), Drop("p", DropKind.NOT_REGULAR_FILE, "not a regular file"))
    verdict = classify(Facts(outputs_dropped=2, outputs_over_caps=0, output_drops=drops))
    assert verdict.status == S.EXECUTION_STATUS_COMPLETED


def test_a_sandbox_that_ended_under_its_program_says_so():
    verdict = classify(Facts(failed_step=(0, "main.py", -1), sandbox_ended=2))
    assert verdict.status == S.EXECUTION_STATUS_FAILED and verdict.error_code == C.ERROR_CODE_RUNTIME_ERROR
    assert verdict.message.startswith("the sandbox ended while main.py ran (exit 2)")
    steps = classify(Facts(failed_step=(1, "b.py", -1), step_count=3, sandbox_ended=2))
    assert steps.message.startswith("the sandbox ended while step 2/3 b.py ran")
    install = classify(Facts(install_failed=True, sandbox_ended=2))
    assert install.error_code == C.ERROR_CODE_RUNTIME_ERROR
    assert install.message.startswith("the sandbox ended while the package install ran")


def test_a_sandbox_the_oom_killer_ended_is_memory_limit():
    # Under gVisor the host's OOM killer ends the whole sandbox: the engine's flag says why.
    verdict = classify(Facts(failed_step=(0, "main.py", -1), sandbox_ended=137, engine_oom=True))
    assert verdict.error_code == C.ERROR_CODE_MEMORY_LIMIT
    killed = classify(Facts(kill=(C.ERROR_CODE_TIMEOUT, "t"), failed_step=(0, "main.py", -1), sandbox_ended=137))
    assert killed.error_code == C.ERROR_CODE_TIMEOUT
