"""Renders the README's configuration tables from the settings classes.

Each table sits between `<!-- config:<name> begin -->` and `<!-- config:<name>
end -->` in README.md and lists one settings class: each field's environment
variable, its default and its docstring (`use_attribute_docstrings`). A
field without a docstring is an error, so a new setting cannot go
undocumented. tests/unit/test_config_docs.py fails when README.md is stale.

    python scripts/gen_config_docs.py          # rewrite README.md
    python scripts/gen_config_docs.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.common.contract.limits import RequestLimits
from services.control.config import ControlSettings
from services.egress.config import EgressSettings
from services.spawner.config import SpawnerSettings

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Table name in the markers -> the class it lists.
TABLES: dict[str, type[BaseSettings]] = {
    "spawner": SpawnerSettings,
    "mesh": RequestLimits,
    "control": ControlSettings,
    "egress": EgressSettings,
}
HEADER = "| variable | default | meaning |\n| --- | --- | --- |"


def marker(name: str, edge: str) -> str:
    return f"<!-- config:{name} {edge} (scripts/gen_config_docs.py; edit the settings class, not this table) -->"


def _default(field: FieldInfo) -> str:
    """The default as an operator would write it in the environment."""
    value = field.get_default(call_default_factory=True)
    if field.default_factory is not None and value != field.get_default(call_default_factory=True):
        return "a new random one per start"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        value = ",".join(value)
    if value == "":
        return "empty"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def table(settings: type[BaseSettings]) -> str:
    """One markdown row per setting; nested settings (MESH_* limits) have a table of their own."""
    prefix = settings.model_config.get("env_prefix", "")
    rows = [HEADER]
    for name, field in settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            continue
        if not field.description:
            raise ValueError(f"{settings.__name__}.{name} has no docstring: say what it is in one sentence")
        meaning = " ".join(field.description.split()).replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    """`readme` with every marked table replaced by the one generated now."""
    for name, settings in TABLES.items():
        begin, end = marker(name, "begin"), marker(name, "end")
        if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
            raise ValueError(f"README.md must hold exactly one {begin} ... {end} block")
        before, _, rest = readme.partition(begin)
        _, _, after = rest.partition(end)
        readme = f"{before}{begin}\n{table(settings)}\n{end}{after}"
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale, write nothing")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md's configuration tables are stale: run scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        README.write_text(fresh)
        print("README.md: configuration tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
