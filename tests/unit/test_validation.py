"""ExecuteRequest validation (services/spawner/validation.py, with the rules
of services/common/contract/requests.py it shares with control)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract.errors import InvalidArgument
from services.common.contract.requests import Step
from services.spawner.config import MIB, SpawnerSettings
from services.spawner.validation import ExecutionSpec, validate_execute

SETTINGS = SpawnerSettings()
F = common.File


def good_request() -> spawner_pb2.ExecuteRequest:
    return spawner_pb2.ExecuteRequest(
        execution_id="exec-1",
        tenant="acme_co",
        language=common.LANGUAGE_PYTHON,
        files=[F(path="main.py", content=b"print(1)"), F(path="lib/util.py", content=b"")],
        entry="main.py",
        args=["--x", "1"],
    )


def test_good_request_gets_defaults() -> None:
    spec = validate_execute(good_request(), SETTINGS)
    assert spec == ExecutionSpec(
        execution_id="exec-1",
        tenant="acme_co",
        language="python",
        files=(("main.py", b"print(1)"), ("lib/util.py", b"")),
        steps=(Step("main.py", ("--x", "1")),),
        env={},
        stdin=b"",
        timeout_ms=SETTINGS.default_timeout_ms,
        memory_bytes=SETTINGS.default_memory_bytes,
        cpus=SETTINGS.default_cpus,
        prior_outputs=(),
    )


def test_good_request_with_everything_set() -> None:
    req = good_request()
    req.language = common.LANGUAGE_NODE
    req.ClearField("entry")
    req.ClearField("args")
    req.steps.extend([common.Step(path="lib/util.py", args=["a"]), common.Step(path="main.py")])
    req.limits.CopyFrom(common.Limits(timeout_ms=100, memory_bytes=64 * MIB, cpus=0.5))
    req.env.update({"FOO": "bar", "_x1": ""})
    req.stdin = b"input"
    req.prior_outputs.append(F(path="out/report.txt", content=b"old"))
    spec = validate_execute(req, SETTINGS)
    assert spec.language == "node"
    assert spec.steps == (Step("lib/util.py", ("a",)), Step("main.py", ()))
    assert (spec.timeout_ms, spec.memory_bytes, spec.cpus) == (100, 64 * MIB, 0.5)
    assert spec.env == {"FOO": "bar", "_x1": ""}
    assert spec.stdin == b"input"
    assert spec.prior_outputs == (("out/report.txt", b"old"),)


def test_error_str_names_the_field() -> None:
    err = InvalidArgument("files[2].path", "must be relative")
    assert str(err) == "files[2].path: must be relative"
    assert (err.field, err.description) == ("files[2].path", "must be relative")


Mutation = Callable[[spawner_pb2.ExecuteRequest], object]


def _set(name: str, value: object) -> Mutation:
    return lambda r: setattr(r, name, value)


def _files(*files: common.File) -> Mutation:
    def mutate(r: spawner_pb2.ExecuteRequest) -> None:
        r.ClearField("files")
        r.files.extend(files)
        r.entry = files[0].path if files else ""

    return mutate


def _steps(*steps: common.Step) -> Mutation:
    def mutate(r: spawner_pb2.ExecuteRequest) -> None:
        r.ClearField("entry")
        r.ClearField("args")
        r.steps.extend(steps)

    return mutate


def _limits(**kw: object) -> Mutation:
    return lambda r: r.limits.CopyFrom(common.Limits(**kw))


def _env(**kw: str) -> Mutation:
    return lambda r: r.env.update(kw)


def _many_files(n: int, size: int = 0) -> Mutation:
    return _files(*(F(path=f"f{i}.py", content=b"x" * size) for i in range(n)))


S = SETTINGS
INVALID = [
    ("execution_id-missing", _set("execution_id", ""), "execution_id"),
    ("execution_id-bad-char", _set("execution_id", "a/b"), "execution_id"),
    ("execution_id-trailing-newline", _set("execution_id", "abc\n"), "execution_id"),
    ("execution_id-too-long", _set("execution_id", "a" * 65), "execution_id"),
    ("tenant-missing", _set("tenant", ""), "tenant"),
    ("tenant-unicode-digit", _set("tenant", "t\u0661"), "tenant"),
    ("language-unspecified", _set("language", common.LANGUAGE_UNSPECIFIED), "language"),
    ("language-unknown-number", _set("language", 7), "language"),
    ("files-none", _files(), "files"),
    ("files-too-many", _many_files(S.limits.max_files + 1), "files"),
    ("file-path-absolute", _files(F(path="a.py"), F(path="/etc/x")), "files[1].path"),
    ("file-path-dotdot", _files(F(path="a.py"), F(path="../x")), "files[1].path"),
    ("file-path-too-long", _files(F(path="a" * (S.limits.max_path_length + 1))), "files[0].path"),
    ("file-too-big", _files(F(path="a.py", content=b"x" * (S.limits.max_file_bytes + 1))), "files[0].content"),
    (
        "files-total-too-big",
        _many_files(S.limits.max_total_file_bytes // S.limits.max_file_bytes + 1, S.limits.max_file_bytes),
        "files",
    ),
    ("files-collide-case", _files(F(path="a.py"), F(path="A.py")), "files"),
    ("files-collide-dir", _files(F(path="a"), F(path="a/b.py")), "files"),
    ("entry-and-steps-missing", _set("entry", ""), "entry"),
    ("entry-and-steps-both", lambda r: r.steps.add(path="main.py"), "steps"),
    ("entry-not-staged", _set("entry", "nope.py"), "entry"),
    ("entry-other-case", _set("entry", "MAIN.py"), "entry"),
    ("steps-too-many", _steps(*[common.Step(path="main.py")] * 11), "steps"),
    ("step-not-staged", _steps(common.Step(path="main.py"), common.Step(path="x.py")), "steps[1].path"),
    ("step-args-too-many", _steps(common.Step(path="main.py", args=["a"] * (S.limits.max_args + 1))), "steps[0].args"),
    ("step-arg-nul", _steps(common.Step(path="main.py", args=["ok", "a\x00b"])), "steps[0].args[1]"),
    ("limits-timeout-low", _limits(timeout_ms=99), "limits.timeout_ms"),
    ("limits-timeout-high", _limits(timeout_ms=S.max_timeout_ms + 1), "limits.timeout_ms"),
    ("limits-memory-low", _limits(memory_bytes=S.min_memory_bytes - 1), "limits.memory_bytes"),
    ("limits-memory-high", _limits(memory_bytes=S.max_memory_bytes + 1), "limits.memory_bytes"),
    ("limits-cpus-nan", _limits(cpus=float("nan")), "limits.cpus"),
    ("limits-cpus-inf", _limits(cpus=float("inf")), "limits.cpus"),
    ("limits-cpus-negative", _limits(cpus=-0.5), "limits.cpus"),
    ("limits-cpus-high", _limits(cpus=S.max_cpus + 0.5), "limits.cpus"),
    ("env-too-many", lambda r: r.env.update({f"V{i}": "" for i in range(S.limits.max_env + 1)}), "env"),
    ("env-name-digit-first", _env(**{"1X": "v"}), 'env["1X"]'),
    ("env-name-dash", _env(**{"A-B": "v"}), 'env["A-B"]'),
    ("env-name-newline", _env(**{"A\n": "v"}), 'env["A\\n"]'),
    ("env-name-too-long", _env(**{"A" * 129: "v"}), 'env["' + "A" * 64 + '..."]'),
    ("env-value-nul", _env(FOO="a\x00b"), 'env["FOO"]'),
    ("env-reserved-proxy", _env(https_proxy="http://evil"), 'env["https_proxy"]'),
    ("env-reserved-sandbox", _env(SANDBOX_TOKEN="x"), 'env["SANDBOX_TOKEN"]'),
    ("env-reserved-ld-preload", _env(LD_PRELOAD="/x.so"), 'env["LD_PRELOAD"]'),
    ("env-too-big", _env(A="x" * S.limits.max_env_bytes), "env"),
    ("stdin-too-big", _set("stdin", b"x" * (S.limits.max_stdin_bytes + 1)), "stdin"),
    ("args-too-many", lambda r: r.args.extend(["a"] * S.limits.max_args), "args"),
    ("arg-nul", lambda r: r.args.append("a\x00"), "args[2]"),
    ("arg-too-long", lambda r: r.args.append("é" * 2049), "args[2]"),
    ("args-with-steps", lambda r: (_steps(common.Step(path="main.py"))(r), r.args.append("x")), "args"),
    (
        "prior-output-too-many",
        lambda r: r.prior_outputs.extend(F(path=f"o{i}") for i in range(S.limits.max_files + 1)),
        "prior_outputs",
    ),
    ("prior-output-hidden", lambda r: r.prior_outputs.extend([F(path="ok"), F(path=".x")]), "prior_outputs[1].path"),
    (
        "prior-output-too-big",
        lambda r: r.prior_outputs.add(path="o", content=b"x" * (S.limits.max_file_bytes + 1)),
        "prior_outputs[0].content",
    ),
    ("prior-output-collide", lambda r: r.prior_outputs.extend([F(path="o"), F(path="O")]), "prior_outputs"),
    ("variant-unknown", _set("variant", "gpu"), "variant"),
    (
        "variant-not-for-node",
        lambda r: (_set("language", common.LANGUAGE_NODE)(r), _set("variant", "datascience")(r)),
        "variant",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in INVALID])
def test_invalid(mutate: Mutation, field: str) -> None:
    req = good_request()
    mutate(req)
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_limits(timeout_ms=S.max_timeout_ms), ("timeout_ms", S.max_timeout_ms), id="timeout-at-max"),
        pytest.param(
            _limits(memory_bytes=S.min_memory_bytes), ("memory_bytes", S.min_memory_bytes), id="memory-at-min"
        ),
        pytest.param(_limits(cpus=S.max_cpus), ("cpus", S.max_cpus), id="cpus-at-max"),
        pytest.param(_limits(cpus=-0.0), ("cpus", S.default_cpus), id="cpus-negative-zero"),
        pytest.param(
            lambda r: r.args.extend(["a"] * (S.limits.max_args - 2)),
            ("steps", (Step("main.py", ("--x", "1") + ("a",) * (S.limits.max_args - 2)),)),
            id="args-at-max",
        ),
        pytest.param(_env(**{"A" * 128: "v"}), ("env", {"A" * 128: "v"}), id="env-name-at-max"),
        pytest.param(_env(my_proxy="x"), ("env", {"my_proxy": "x"}), id="env-not-reserved"),
        pytest.param(_set("variant", "datascience"), ("variant", "datascience"), id="variant-datascience"),
    ],
)
def test_boundaries_accepted(mutate: Mutation, expected: tuple[str, object]) -> None:
    req = good_request()
    mutate(req)
    spec = validate_execute(req, SETTINGS)
    name, value = expected
    assert getattr(spec, name) == value


def test_packages_are_validated_and_kept() -> None:
    req = good_request()
    req.packages.add(name="requests", version="==2.32")
    req.packages.add(name="six")
    req.install.allow_sdist = True
    spec = validate_execute(req, SETTINGS)
    assert [(p.name, p.version) for p in spec.packages] == [("requests", "==2.32"), ("six", "")]
    assert spec.allow_sdist and not spec.allow_install_scripts


@pytest.mark.parametrize(
    "name, version, field",
    [
        ("--index-url=http://evil", "", "packages[0].name"),
        ("git+https://x/y", "", "packages[0].name"),
        ("../local", "", "packages[0].name"),
        ("requests", "@ https://x/y.whl", "packages[0].version"),
        ("requests", "==1.0; os_name=='nt'", "packages[0].version"),
    ],
    ids=["option", "vcs", "path", "url-version", "marker"],
)
def test_bad_packages_are_refused(name, version, field) -> None:
    req = good_request()
    req.packages.add(name=name, version=version)
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert info.value.field == field


def test_duplicate_and_too_many_packages_are_refused() -> None:
    req = good_request()
    req.packages.add(name="six")
    req.packages.add(name="Six")
    with pytest.raises(InvalidArgument, match="listed twice"):
        validate_execute(req, SETTINGS)
    req = good_request()
    for i in range(SETTINGS.limits.max_packages + 1):
        req.packages.add(name=f"pkg{i}")
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert info.value.field == "packages"


@pytest.mark.parametrize(
    "first, second",
    [("Foo_Bar", "foo-bar"), ("zope.interface", "Zope_Interface"), ("requests[socks]", "requests")],
)
def test_the_same_pip_package_twice_is_refused(first, second) -> None:
    req = good_request()
    req.packages.add(name=first)
    req.packages.add(name=second)
    with pytest.raises(InvalidArgument, match="listed twice") as info:
        validate_execute(req, SETTINGS)
    assert info.value.field == "packages[1].name"


def test_limits_come_from_mesh_variables(monkeypatch) -> None:
    monkeypatch.setenv("MESH_MAX_FILES", "1")
    req = good_request()  # two files
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SpawnerSettings())
    assert info.value.field == "files"


def test_first_violation_in_proto_order_wins() -> None:
    req = good_request()
    req.tenant = "bad tenant"  # field 2
    req.stdin = b"x" * (SETTINGS.limits.max_stdin_bytes + 1)  # field 10
    req.execution_id = "bad id"  # field 1
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert info.value.field == "execution_id"


def test_collision_message_names_both_paths() -> None:
    req = good_request()
    req.files.add(path="Main.py")
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert '"main.py"' in info.value.description
    assert '"Main.py"' in info.value.description


def test_limit_message_names_the_range() -> None:
    req = good_request()
    req.limits.timeout_ms = 50
    with pytest.raises(InvalidArgument) as info:
        validate_execute(req, SETTINGS)
    assert f"100 and {SETTINGS.max_timeout_ms}" in info.value.description


def test_prior_outputs_counted_apart_from_files() -> None:
    req = good_request()
    _many_files(SETTINGS.limits.max_files)(req)
    req.prior_outputs.extend(F(path=f"o{i}") for i in range(SETTINGS.limits.max_files))
    spec = validate_execute(req, SETTINGS)
    assert len(spec.files) == len(spec.prior_outputs) == SETTINGS.limits.max_files


def test_the_sandbox_runtime_is_checked_and_defaulted() -> None:
    assert validate_execute(good_request(), SETTINGS).sandbox_runtime == "runc"
    gvisor_default = SpawnerSettings(default_runtime="gvisor")
    assert validate_execute(good_request(), gvisor_default).sandbox_runtime == "gvisor"
    asked = good_request()
    asked.runtime = "runc"
    assert validate_execute(asked, gvisor_default).sandbox_runtime == "runc"
    forged = good_request()
    forged.runtime = "runc --privileged"
    with pytest.raises(InvalidArgument) as refused:
        validate_execute(forged, SETTINGS)
    assert refused.value.field == "runtime"
