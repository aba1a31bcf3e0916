"""Starts the connector's console scripts for the tests, each run its own fresh OS process, without paying the
~1.2 s of CPU that importing airbyte-cdk costs every `source-usage` / `tap-usage` process.

How: each test process (an xdist worker, or pytest itself) starts one small *fork server* the first time it
launches a connector: this file run as a script, a new Python interpreter (never a fork of the test process,
which holds threads and hundreds of MB). The server imports what the console scripts import (the modules in
PRELOAD, with the garbage collector paused and the result frozen, as `source_usage.console` does) and
nothing else, then waits for requests. For each run it forks a child that

* takes the run's stdin, stdout and stderr (received as file descriptors) as its fds 0, 1 and 2 and closes
  every other descriptor it inherited,
* gets the run's argv, environment (os.environ replaced, TZ re-read), working directory, the signal
  dispositions and mask the server had when it started (those of a Python started by the test process)
  and `sys.path[0]` = the script's folder,
* and executes the installed console script file itself (`runpy.run_path(<bin>/source-usage)`: the same
  `sys.exit(airbyte_main())` the real executable runs), ending the way the interpreter ends any program
  (SystemExit, uncaught exceptions, non-daemon threads, atexit, flushing).

The server reaps the child with `wait4` and reports its exit status and its own resource usage: peak RSS
(ru_maxrss) is the child's alone, the imported modules it shares with the server included as a real process
would hold them, and it is known even for a run killed by a signal. Signals (terminate, kill, timeouts) go
through the server by pidfd, so a pid can never be hit after it was reused.

Nothing that the connector reads "once at start" is read in the server: it imports modules only, and
checks (reported in its greeting, asserted by test_launcher.py) that the settings are unread, the plugin
registry and the spec are not cached, no process-wide budget layer exists and the CDK's print buffer is empty.
The environment variables the imports did read are recorded; a run whose environment differs from the
server's in one of them, or in anything the interpreter reads at startup (PYTHON*, LANG, LC_*), is started
by real exec instead, as is any program that is not one of the package's console scripts.

Real exec (subprocess.Popen of the installed script) is also used when asked (`real_exec=True`, for the tests
whose point is the real executable) and everywhere when SOURCE_USAGE_TEST_EXEC=1.

What a forked run does not share with a real process: the hash seed of its strings (every forked child
has the server's; `SOURCE_USAGE_TEST_EXEC=1` runs the suite with fresh ones), its parent (the server), and
/proc/<pid>/cmdline and /proc/<pid>/environ (the server's; argv and os.environ inside the child are the run's).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

EXEC_SWITCH = "SOURCE_USAGE_TEST_EXEC"
"""SOURCE_USAGE_TEST_EXEC=1: every run is a real exec of the installed script (no fork server)."""
BIN = Path(sys.executable).parent
ENTRY_MODULE = "source_usage.console"
"""Console scripts whose entry point is in this module are forked from the server."""
PRELOAD = ("source_usage.console", "source_usage.run", "source_usage.singer")
"""What the server imports: what `source-usage` and `tap-usage` import before they run."""
STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_")
"""Environment variables (prefixes) the interpreter reads when it starts: a run that changes one is exec'd."""
START_TIMEOUT_SECONDS = 120.0
MAX_MESSAGE = 1 << 20

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
Stream = Union[None, int, IO[Any]]


class LauncherError(RuntimeError):
    """The fork server failed (it could not start, or it died under a run)."""


def real_exec_forced() -> bool:
    return os.environ.get(EXEC_SWITCH, "") not in ("", "0")


# ----- the server (runs in its own interpreter: `python launcher.py --serve FD`) --------------------------


class _RecordedEnviron:
    """Records which environment variables are read while the preloaded modules are imported."""

    def __init__(self) -> None:
        self.names: Set[str] = set()
        self.iterated = False
        self._saved: Dict[str, Any] = {}

    def __enter__(self) -> "_RecordedEnviron":
        cls = type(os.environ)
        recorder = self
        originals = {name: getattr(cls, name) for name in ("__getitem__", "__contains__", "__iter__")}
        self._saved = originals

        def getitem(environ: Any, key: str) -> Any:
            recorder.names.add(key)
            return originals["__getitem__"](environ, key)

        def contains(environ: Any, key: object) -> bool:
            recorder.names.add(str(key))
            return originals["__contains__"](environ, key)

        def iterate(environ: Any) -> Any:
            recorder.iterated = True
            return originals["__iter__"](environ)

        cls.__getitem__, cls.__contains__, cls.__iter__ = getitem, contains, iterate  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        cls = type(os.environ)
        for name, original in self._saved.items():
            setattr(cls, name, original)


def _pristine() -> Dict[str, Any]:
    """The state the connector builds "once at start", which must still be unbuilt in the server."""
    from airbyte_cdk.logger import PRINT_BUFFER

    from source_usage import config
    from source_usage.framework import budget, plugin, settings

    return {
        "settings_read": settings._current is not None,
        "plugins_cached": plugin.plugins.cache_info().currsize,
        "spec_cached": config.connection_specification.cache_info().currsize,
        "process_budget_layers": len(budget._process_layers),
        "print_buffer": PRINT_BUFFER.buffer.getvalue(),
        "print_buffer_flush_wrapped": "flush" in vars(PRINT_BUFFER),
        "root_handler_filters": sum(len(handler.filters) for handler in logging.getLogger().handlers),
    }


def _open_fds() -> Set[int]:
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))  # the listing's own descriptor is gone by now
        except OSError:
            continue
        fds.add(int(name))
    return fds


@dataclass
class _Child:
    pid: int
    pidfd: int
    channel: socket.socket
    client_gone: bool = False


def _serve(control_fd: int) -> Optional[Dict[str, Any]]:
    """The server's loop. Returns only in a forked child: the request that child is to run."""
    control = socket.socket(fileno=control_fd)
    # As a Python program started by the test process has them (the child gets them back).
    started_handlers = {number: signal.getsignal(number) for number in signal.valid_signals()}
    started_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    sys.path[0] = str(BIN)  # a console script's own folder, as for the real script; never this file's
    with _RecordedEnviron() as read:
        gc.disable()
        try:
            for module in PRELOAD:
                import_module(module)
            gc.freeze()
        finally:
            gc.enable()
    import_fds = _open_fds() - {control.fileno()}
    hello = {
        "pid": os.getpid(),
        "executable": sys.executable,
        "preloaded": list(PRELOAD),
        "environment_read": sorted(read.names),
        "environment_iterated": read.iterated,
        "environment": dict(os.environ),
        "pristine": _pristine(),
        "threads": threading.active_count(),
        "open_fds": sorted(import_fds),
    }
    control.sendall(json.dumps(hello).encode())

    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, ("control", 0))
    children: Dict[int, _Child] = {}

    def finish(child: _Child) -> None:
        _, status, usage = os.wait4(child.pid, 0)
        selector.unregister(child.pidfd)
        if not child.client_gone:
            selector.unregister(child.channel)
            report = {"status": status, "maxrss_kb": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime}
            try:
                child.channel.send(json.dumps(report).encode())
            except OSError:
                pass
        os.close(child.pidfd)
        child.channel.close()
        del children[child.pid]

    while True:
        for key, _ in selector.select():
            kind, pid = key.data
            if kind == "control":
                try:
                    message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 4)
                except OSError:
                    message, fds = b"", []
                if not message:  # the test process is gone or done: so are its runs
                    for child in list(children.values()):
                        try:
                            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
                        except OSError:
                            pass
                        os.wait4(child.pid, 0)
                    os._exit(0)
                request = json.loads(message)
                channel = socket.socket(fileno=fds[0])
                stdio = fds[1:4]
                try:
                    pid = os.fork()
                except OSError as problem:
                    for fd in stdio:
                        os.close(fd)
                    channel.send(json.dumps({"error": f"fork failed: {problem}"}).encode())
                    channel.close()
                    continue
                if pid == 0:
                    # The child: drop everything of the server's, then take the run's stdio.
                    selector.close()
                    control.close()
                    for other in children.values():
                        os.close(other.pidfd)
                        other.channel.close()
                    channel.close()
                    for target, fd in enumerate(stdio):
                        os.dup2(fd, target)
                    keep = import_fds | {0, 1, 2}
                    for fd in _open_fds() - keep:
                        os.close(fd)
                    request["_started_handlers"] = started_handlers
                    request["_started_mask"] = started_mask
                    return request
                for fd in stdio:
                    os.close(fd)
                child = _Child(pid, os.pidfd_open(pid), channel)
                children[pid] = child
                selector.register(child.pidfd, selectors.EVENT_READ, ("exit", pid))
                selector.register(channel, selectors.EVENT_READ, ("client", pid))
                channel.send(json.dumps({"pid": pid}).encode())
            elif kind == "exit":
                finish(children[pid])
            elif kind == "client":
                child = children[pid]
                try:
                    data = child.channel.recv(MAX_MESSAGE)
                except OSError:
                    data = b""
                if not data:  # the test gave up on the run without waiting for it: do not leave it running
                    child.client_gone = True
                    selector.unregister(child.channel)
                    number = signal.SIGKILL
                else:
                    number = int(json.loads(data)["signal"])
                try:
                    signal.pidfd_send_signal(child.pidfd, number)
                except ProcessLookupError:
                    pass  # exited already; its exit is reported as it happened


def _become_the_run(request: Dict[str, Any]) -> None:
    """In a forked child: take on the run's process state, then run the console script as its `__main__`."""
    import runpy

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    for number, handler in request.pop("_started_handlers").items():
        if handler is None or number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, handler)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, request.pop("_started_mask"))
    tempfile.tempdir = None  # TMPDIR is the run's
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and stream.isatty():
            stream.reconfigure(line_buffering=True)  # as the interpreter sets up a terminal
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


# ----- the client (in the test process) --------------------------------------------------------------------


@dataclass
class Usage:
    """A finished run's own resource usage (`wait4`)."""

    maxrss_kb: int
    utime: float
    stime: float
    own: bool
    """True: the child's own figures. False (real exec): ru_maxrss also covers the test process's resident
    memory at the time it spawned the child (Linux keeps the pre-exec peak), so it is an upper bound."""

    @property
    def peak_rss_mb(self) -> float:
        return self.maxrss_kb / 1024


class _Server:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            cwd="/",
        )
        theirs.close()
        self.control = ours
        ours.settimeout(START_TIMEOUT_SECONDS)
        try:
            greeting = ours.recv(MAX_MESSAGE)
        except socket.timeout:
            greeting = b""
        ours.settimeout(None)
        if not greeting:
            self.close()
            raise LauncherError(f"the fork server did not start: {self.log_tail()}")
        self.hello: Dict[str, Any] = json.loads(greeting)
        self.lock = threading.Lock()

    def log_tail(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-3000:] or "(no output)"
        except (OSError, ValueError):
            return "(no log)"

    def forks(self, argv: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether `argv` with `env` runs in a forked child exactly as it would exec'd."""
        server_env = self.hello["environment"]
        if self.hello["environment_iterated"]:
            return dict(env) == server_env
        for name in set(env) | set(server_env):
            if name in self.hello["environment_read"] or name.startswith(STARTUP_VARIABLES):
                if env.get(name) != server_env.get(name):
                    return False
        return True

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, stdio: Sequence[int]) -> Tuple[int, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd}).encode()
            with self.lock:
                socket.send_fds(self.control, [request], [theirs.fileno(), *stdio])
        except OSError as problem:
            ours.close()
            raise LauncherError(f"the fork server is gone ({problem}): {self.log_tail()}") from None
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT_SECONDS)
        try:
            reply = ours.recv(MAX_MESSAGE)
        except socket.timeout:
            reply = b""
        if not reply:
            ours.close()
            raise LauncherError(f"the fork server did not start {argv[0]}: {self.log_tail()}")
        ours.settimeout(None)
        answer = json.loads(reply)
        if "error" in answer:
            ours.close()
            raise LauncherError(f"the fork server could not start {argv[0]}: {answer['error']}")
        return answer["pid"], ours

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


_server: Optional[_Server] = None
_server_owner = 0
_server_lock = threading.Lock()


def server() -> _Server:
    """This process's fork server, started on first use (and again if it died)."""
    global _server, _server_owner
    with _server_lock:
        if _server is None or _server_owner != os.getpid() or not _server.alive():
            if _server is not None and _server_owner == os.getpid():
                _server.close()  # it died: reap it
            _server = _Server()
            _server_owner = os.getpid()
        return _server


def shutdown() -> None:
    """Stops this process's fork server (it kills any run still going) and reaps it."""
    global _server
    with _server_lock:
        if _server is not None and _server_owner == os.getpid():
            _server.close()
        _server = None


def forkable_scripts() -> Dict[str, str]:
    """The package's console scripts whose entry point the server preloads: {path: entry point}."""
    from importlib.metadata import entry_points

    scripts = {}
    for entry in entry_points(group="console_scripts"):
        path = BIN / entry.name
        if entry.value.split(":")[0] != ENTRY_MODULE or not path.is_file():
            continue
        with open(path, "rb") as script:
            interpreter = script.readline().decode(errors="replace").strip()
        if interpreter == "#!" + sys.executable:  # run by this interpreter, without options
            scripts[str(path)] = entry.value
    return scripts


_forkable: Optional[Dict[str, str]] = None


def is_forkable(program: str) -> bool:
    global _forkable
    if _forkable is None:
        _forkable = forkable_scripts()
    return os.path.abspath(program) in _forkable


class Process:
    """A started run, shaped like subprocess.Popen (pid, stdin/stdout/stderr, poll, wait, send_signal,
    terminate, kill, returncode), plus `forked` and, once it ended, its `usage`."""

    stdin: Optional[IO[Any]] = None
    stdout: Optional[IO[Any]] = None
    stderr: Optional[IO[Any]] = None
    returncode: Optional[int] = None
    usage: Optional[Usage] = None
    forked: bool = False

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self._wait_lock = threading.Lock()  # one waiter at a time
        self._signal_lock = threading.Lock()  # a signal is sent only before the process is known to be reaped

    def poll(self) -> Optional[int]:
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout: Optional[float] = None) -> int:
        raise NotImplementedError

    def send_signal(self, number: int) -> None:
        raise NotImplementedError

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close_streams(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.returncode is None:
            self.kill()
        self.wait()
        self._close_streams()


class _ForkedProcess(Process):
    forked = True

    def __init__(self, args: Sequence[str], pid: int, channel: socket.socket) -> None:
        super().__init__(args)
        self.pid = pid
        self._channel = channel

    def wait(self, timeout: Optional[float] = None) -> int:
        with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            self._channel.settimeout(timeout)
            try:
                report = self._channel.recv(MAX_MESSAGE)
            except (socket.timeout, BlockingIOError):
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            if not report:
                raise LauncherError(f"the fork server died while {self.args[0]} (pid {self.pid}) ran: {server().log_tail()}")
            result = json.loads(report)
            with self._signal_lock:
                self.usage = Usage(result["maxrss_kb"], result["utime"], result["stime"], own=True)
                self.returncode = os.waitstatus_to_exitcode(result["status"])
                self._channel.close()
            return self.returncode

    def send_signal(self, number: int) -> None:
        """Safe from any thread, also while another waits (a timer killing a run, as with Popen)."""
        with self._signal_lock:
            if self.returncode is None:
                try:
                    self._channel.send(json.dumps({"signal": int(number)}).encode())
                except OSError:
                    pass


class _ExecProcess(Process):
    def __init__(self, args: Sequence[str], popen: subprocess.Popen) -> None:
        super().__init__(args)
        self._popen = popen
        self.pid = popen.pid
        self.stdin, self.stdout, self.stderr = popen.stdin, popen.stdout, popen.stderr
        self._pidfd = os.pidfd_open(popen.pid)

    def wait(self, timeout: Optional[float] = None) -> int:
        with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            ready = selectors.DefaultSelector()
            try:
                ready.register(self._pidfd, selectors.EVENT_READ)
                if not ready.select(timeout):
                    raise subprocess.TimeoutExpired(self.args, timeout)
            finally:
                ready.close()
            with self._signal_lock:  # the pid is reaped (and may be reused) and the pidfd closed together
                _, status, usage = os.wait4(self.pid, 0)
                self._popen.returncode = self.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
                self.usage = Usage(usage.ru_maxrss, usage.ru_utime, usage.ru_stime, own=False)
                os.close(self._pidfd)
            return self.returncode

    def send_signal(self, number: int) -> None:
        """Safe from any thread, also while another waits (a timer killing a run, as with Popen)."""
        with self._signal_lock:
            if self.returncode is None:
                try:
                    signal.pidfd_send_signal(self._pidfd, number)
                except ProcessLookupError:
                    pass


def _stdio_fd(stream: Stream, inherited: int, mode: str, text: bool, close: List[int]) -> Tuple[int, Optional[IO[Any]]]:
    """The descriptor to hand the child for one of its standard streams, and our end if it is a pipe."""
    if stream is None:
        return inherited, None
    if stream == PIPE:
        read_end, write_end = os.pipe()
        ours, theirs = (write_end, read_end) if mode == "w" else (read_end, write_end)
        close.append(theirs)
        return theirs, open(ours, mode if text else mode + "b", encoding="utf-8" if text else None)
    if stream == DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        close.append(fd)
        return fd, None
    if isinstance(stream, int):
        return stream, None
    return stream.fileno(), None


def popen(
    argv: Sequence[str],
    *,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Union[str, Path]] = None,
    text: bool = False,
    real_exec: bool = False,
) -> Process:
    """Starts `argv` like subprocess.Popen (stdin/stdout/stderr: None to inherit, PIPE, DEVNULL, a file or
    a descriptor). A console script of this package is forked from the fork server unless `real_exec`,
    SOURCE_USAGE_TEST_EXEC=1, or its environment needs a fresh interpreter; anything else is exec'd."""
    argv = [str(part) for part in argv]
    environment = dict(os.environ if env is None else env)
    directory = os.path.abspath(cwd if cwd is not None else os.getcwd())
    if not (real_exec or real_exec_forced()) and is_forkable(argv[0]):
        fork_server = server()
        if fork_server.forks(argv, environment):
            close: List[int] = []
            ends: List[Tuple[int, Optional[IO[Any]]]] = []
            try:
                for stream, inherited, mode in ((stdin, 0, "w"), (stdout, 1, "r"), (stderr, 2, "r")):
                    ends.append(_stdio_fd(stream, inherited, mode, text, close))
                pid, channel = fork_server.start(argv, environment, directory, [fd for fd, _ in ends])
            except BaseException:
                for _, ours in ends:
                    if ours is not None:
                        ours.close()
                raise
            finally:
                for fd in close:
                    os.close(fd)
            process = _ForkedProcess(argv, pid, channel)
            process.stdin, process.stdout, process.stderr = (ours for _, ours in ends)
            return process
    started = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=environment, cwd=directory, text=text)
    return _ExecProcess(argv, started)


@dataclass
class Completed:
    """A finished run: exit code (negative: the signal that ended it), its output, wall time and usage."""

    args: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    usage: Usage
    forked: bool
    timed_out: bool = False


def run(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Union[str, Path]] = None,
    stdin: Stream = None,
    timeout: Optional[float] = None,
    kill_on_timeout: bool = False,
    real_exec: bool = False,
) -> Completed:
    """Runs `argv` to its end with stdout and stderr captured (through files: no pipe can fill up). On
    `timeout` the process is killed; then subprocess.TimeoutExpired is raised, or with `kill_on_timeout`
    the killed run is returned (`timed_out`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = popen(argv, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd, real_exec=real_exec)
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            process.kill()
            process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    assert process.returncode is not None and process.usage is not None
    if timed_out and not kill_on_timeout:
        raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr)
    return Completed(process.args, process.returncode, stdout, stderr, seconds, process.usage, process.forked, timed_out)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _request = _serve(int(sys.argv[2]))
    if _request is not None:  # a forked child: from here on, it is the console script
        _become_the_run(_request)
