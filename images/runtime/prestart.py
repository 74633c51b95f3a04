"""A Python sandbox's PID 1 (`python3 prestart.py SOCKET`): an interpreter
started ahead of its program, and the runner beside it. Starting an
interpreter costs 8-15 ms of CPU in a sandbox; this pays it once, while the
sandbox waits for work, for both.

Before importing anything, this interpreter forks. The child is the
interpreter started ahead: its stdout and stderr are fresh pipes, its stdin
/dev/null, and it waits for one marshalled request on a control pipe:
{"argv": [...], "env": {...}, "cwd": "...", "stdin": path or None}, the
request the runner would have run with Popen. The parent imports runner.py
(beside this file) and serves SOCKET as `runner.py serve SOCKET` does, with
the child as the first program's process (docs/decisions.md, "Python started
ahead").

The program is then run in the child exactly as `argv` would have run it:
same `sys.argv`, `sys.path`, `__main__` module, environment, working
directory, stdin, signals, exit status and uncaught-exception output.
Whatever this cannot reproduce exactly (another interpreter or flags, a
changed variable the interpreter reads at start-up, a directory, zip or .pyc
as the program, an unreadable file) is handed to the real interpreter with
execve, in this same process: the runner sees one pid either way.

Until the fork, only modules every interpreter has imported at start-up are
used (os, sys, marshal, zipimport and the import machinery), so nothing of
this file is visible to the program: a `json.py` of its own still shadows
json.
"""

_PRISTINE = frozenset(globals())  # a fresh script's globals, before this file's


def _prestart(control: int) -> None:
    import marshal
    import os
    import sys

    main = sys.modules["__main__"].__dict__
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


def _start(socket_path: str) -> None:
    """Forks the interpreter started ahead (which returns here once its
    program has run), then serves as the runner."""
    import os
    import sys

    control, handing = os.pipe()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    child_ends = (control, out_write, err_write)
    try:
        pid = os.fork()
    except OSError:
        pid = -1  # no process to start ahead: every program starts when it arrives
    if pid == 0:
        stdin = os.open(os.devnull, os.O_RDONLY)
        for target, source in ((0, stdin), (1, out_write), (2, err_write)):
            os.dup2(source, target)
        os.closerange(3, control)
        os.closerange(control + 1, os.sysconf("SC_OPEN_MAX"))
        _prestart(control)
        return
    for descriptor in child_ends:
        os.close(descriptor)
    import runner  # beside this file: sys.path[0]; precompiled in the image

    ahead = runner.Program(pid, out_read, err_read) if pid > 0 else None
    if ahead is None:
        for descriptor in (out_read, err_read, handing):
            os.close(descriptor)
        handing = -1
    runner.serve(socket_path, ahead, handing)
    sys.exit(0)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: prestart.py SOCKET_PATH")
    _start(sys.argv[1])
