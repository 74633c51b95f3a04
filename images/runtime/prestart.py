"""A Python interpreter started ahead of its program (the runner's
`serve SOCKET python3`): its start-up, 10-15 ms in a sandbox, is paid while
the sandbox waits for work instead of after the program arrives.

The runner runs this source with `python3 -c SOURCE FD` before any tenant
code runs, and later writes one marshalled request to FD and closes it:
{"argv": [...], "env": {...}, "cwd": "...", "stdin": path or None}, the
request it would have run with Popen. The program is then run in this
interpreter exactly as `argv` would have run it: same `sys.argv`, `sys.path`,
`__main__` module, environment, working directory, stdin, exit status and
uncaught-exception output. Whatever this cannot reproduce exactly (another
interpreter or flags, a changed variable the interpreter reads at start-up,
a directory, zip or .pyc as the program, an unreadable file) is handed to the
real interpreter with execve, in this same process: the runner sees one pid
either way.

Only modules every interpreter has imported by the time `-c` runs are used
(os, sys, marshal, zipimport and the import machinery), so nothing of this
file is visible to the program: a `json.py` of its own still shadows json.
"""

_PRISTINE = frozenset(globals())  # a fresh script's globals, before this file's


def _prestart() -> None:
    import marshal
    import os
    import sys

    main = sys.modules["__main__"].__dict__
    control = int(sys.argv[1])
    chunks = []
    while chunk := os.read(control, 1 << 16):
        chunks.append(chunk)
    os.close(control)
    if not chunks:
        os._exit(0)  # the runner ended without a program
    request = marshal.loads(b"".join(chunks))
    argv, cwd, stdin = request["argv"], request["cwd"], request["stdin"]
    environment = {**os.environ, **request["env"]}

    try:
        os.chdir(cwd)
        descriptor = os.open(stdin or os.devnull, os.O_RDONLY)
    except OSError as exc:
        # As the runner reports a program Popen could not start.
        os.write(2, f"runner: {exc.filename or argv[0]}: {exc.strerror}\n".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    if descriptor != 0:
        os.dup2(descriptor, 0)
        os.close(descriptor)

    source = _script_source(argv, environment)
    if source is None:
        _exec(argv, environment)
        return
    script = os.path.abspath(argv[1])
    try:
        code = compile(source, script, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        _exec(argv, environment)  # the interpreter's own report, word for word
        return

    os.environ.update(request["env"])
    sys.argv = argv[1:]
    sys.orig_argv = list(argv)
    added = environment.get("PYTHONPATH", "")
    sys.path[0:1] = [os.path.dirname(os.path.realpath(argv[1])), *(added.split(os.pathsep) if added else [])]
    loaders = sys.modules["_frozen_importlib_external"]
    for name in [name for name in main if name not in _PRISTINE]:
        del main[name]  # this file's names: the program's globals are a fresh script's
    main.update(__doc__=None, __file__=script, __cached__=None, __loader__=loaders.SourceFileLoader("__main__", script))
    try:
        exec(code, main)
    except SystemExit:
        raise
    except BaseException as exc:
        # As the interpreter reports an uncaught exception, without this
        # function's frame; an uncaught KeyboardInterrupt ends it as SIGINT
        # would (exit status 130 either way).
        traceback = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc.__traceback__ = traceback  # what the interpreter's report prints
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, traceback
        sys.excepthook(type(exc), exc, traceback)
        raise SystemExit(130 if isinstance(exc, KeyboardInterrupt) else 1) from None


# Variables the interpreter (or the C library beneath it) reads while it
# starts: a program whose environment changes one of them gets a fresh
# interpreter. PYTHONPATH is the exception, laid onto sys.path as the
# interpreter would (absolute, normalised entries only).
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_", "GLIBC_")
_STARTUP_NAMES = ("LANG", "LANGUAGE", "HOME", "PATH", "TZ")


def _script_source(argv: list, environment: dict) -> bytes | None:
    """The program's source when this interpreter can run it exactly as
    `argv` would, else None."""
    import os
    import sys

    if len(argv) < 2 or argv[0] != sys.orig_argv[0] or not argv[1] or argv[1].startswith("-"):
        return None
    for name in set(environment) | set(os.environ):
        startup = name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
        if startup and name != "PYTHONPATH" and environment.get(name) != os.environ.get(name):
            return None
    if "PYTHONPATH" in os.environ:
        return None
    for entry in environment.get("PYTHONPATH", "").split(os.pathsep) if "PYTHONPATH" in environment else []:
        if not os.path.isabs(entry) or os.path.normpath(entry) != entry:
            return None
    path = argv[1]
    if path.endswith(".pyc") or not os.path.isfile(path):
        return None
    try:
        sys.modules["zipimport"].zipimporter(path)
        return None  # a zip archive: run by its __main__.py
    except Exception:
        pass
    try:
        with open(path, "rb") as file:
            source = file.read()
    except OSError:
        return None
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    if source[:2] == magic[:2]:
        return None  # compiled code, which the interpreter runs as such
    return source


def _exec(argv: list, environment: dict) -> None:
    import _signal
    import os

    # The interpreter ignores these; an exec keeps ignored signals ignored,
    # and Popen's restore_signals would have reset them.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, environment)
    except OSError as exc:
        os.write(2, f"runner: {argv[0]}: {exc.strerror}\n".encode())  # named as Popen names it
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


_prestart()
