"""The runtimes a request may run in: a language, and optionally a variant
of its image with more preinstalled. A runtime's name ("python",
"python-datascience") keys the spawner's images and its warm pool."""

from __future__ import annotations

from services.common.contract.errors import InvalidArgument

STANDARD = ""
DATASCIENCE = "datascience"
# Which variants each language offers besides the standard image.
VARIANTS: dict[str, tuple[str, ...]] = {"python": (DATASCIENCE,), "node": ()}
RUNTIME_NAMES: tuple[str, ...] = ("python", "node", f"python-{DATASCIENCE}")


def runtime_name(language: str, variant: str = STANDARD) -> str:
    return f"{language}-{variant}" if variant else language


def language_of(runtime: str) -> str:
    """The language of a runtime's name ("python-datascience" -> "python")."""
    return runtime.split("-", 1)[0]


def check_variant(language: str, variant: str) -> str:
    """The variant of `language`'s image a request asked for ("" for the
    standard one); InvalidArgument naming `variant` if it has no such one."""
    if variant and variant not in VARIANTS.get(language, ()):
        offered = ", ".join(repr(v) for v in VARIANTS.get(language, ())) or "none"
        raise InvalidArgument(
            "variant", f"{language} has no variant {variant!r} (it offers: {offered}; '' for standard)"
        )
    return variant
