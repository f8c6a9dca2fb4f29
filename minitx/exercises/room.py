"""The safe room: every learner's file is graded in a child process of its own.

A learner's file is code we run, and code can do things no table can show: loop forever, end
the process with os._exit, raise an exception that is not an Exception (SystemExit,
KeyboardInterrupt, GeneratorExit), or print a million lines. So the grader (grader.grade_file)
runs in a child process, and this module, in the parent, watches it:

    a time limit     the child's clock starts when it starts running the file; past
                     TIME_LIMIT seconds it tells us the line it is on (faulthandler) and
                     ends, and we say so in one line naming that line;
    an ending        a child that dies without an answer (os._exit, a crash) gets one line
                     naming the step it was in, which the child reports as it goes;
    its printing     everything the child prints comes back through a pipe, and we pass on at
                     most SHOWN_LINES lines and SHOWN_CHARS characters of it, saying how much
                     we cut.

The child sends its answer as JSON: the table's numbers and the sentences under it, or the
one-line error. On Linux the children are forked from one warm 'forkserver' process that has
run warm_up() below, so a child costs some ten milliseconds rather than the half
second a fresh interpreter takes; each child is still a fresh copy, so nothing one learner's file
changes (numpy itself, say) reaches the next file. The list of exercises grades every file at
once, each in its own child, so that one file that never returns holds it up for one time limit.
"""

import faulthandler
import inspect
import json
import multiprocessing
import os
import re
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from multiprocessing.connection import wait
from pathlib import Path

from minitx.errors import UserError
from minitx.exercises import grader
from minitx.exercises.catalog import BY_NAME, EXERCISES
from minitx.threads import use_blas_threads

# Seconds one file may run. A right file grades in at most about 0.1 s on a two-core machine
# (the largest exercise, cross_attention, runs its forward some 840 times for the finite
# differences), so a machine ten times slower still finishes twenty times inside the limit.
TIME_LIMIT = 20.0
STARTUP_LIMIT = 120.0  # seconds for the child to start at all (the first one imports numpy)
SHOWN_LINES = 20  # of what the learner's file prints, at most this much reaches the terminal:
SHOWN_CHARS = 2000  # a print in forward runs for every nudge of the finite differences
DUMP_GRACE = 2.0  # past the time limit, how long we wait for the child's traceback before we stop it


def context():
    """On Linux, children forked from a warm server; elsewhere a fresh interpreter per child,
    which is slower but safe: macOS's system libraries (Accelerate, behind NumPy there) may
    start threads that a forked copy of a process cannot use, and Windows cannot fork."""
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["minitx.exercises.warmup"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextmanager
def main_module_hidden():
    """multiprocessing runs the parent's main script again in every child (as __mp_main__) so
    that its functions can be found there. Ours live in this module, and a script that grades
    files need not guard its top level, so while starting a child we let the main module look
    like one with no file: multiprocessing then leaves it alone."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


warm = False


def warm_up():
    """What every child would otherwise do first, done once in the server the children are
    forked from (which imports minitx.exercises.warmup to run it): a child then grades a file in
    some ten milliseconds instead of some fifty. numpy imports numpy.random at its first use;
    we want one BLAS thread, as the command line has, so that the numbers are the ones it
    prints; and inspect has to find and read the source of every method a planted mistake
    changes (the grader plants the exercise's mistakes to recognise them in a gradient)."""
    global warm
    if warm:
        return
    import numpy.random  # noqa: F401

    use_blas_threads(1)
    for exercise in EXERCISES:
        for bug in exercise.bugs + exercise.lookalikes:
            for edit in bug.edits:
                inspect.getsourcelines(edit.function)
    warm = True


def child(name, path, cwd, answers, output, dump, time_limit):
    """The child's whole life: grade one file, send the answer, end."""
    # Ctrl-C is the parent's to handle (it stops us); a KeyboardInterrupt the file raises
    # itself is still an exception like any other.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    printed = sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    os.chdir(cwd)
    warm_up()  # done already in a child forked from the warm server

    def send(message):
        # What the file printed reaches the pipe before what we say about it. We flush our own
        # stream, not sys.stdout, which the file may have replaced, and a file that closed it
        # has nothing more to show.
        try:
            printed.flush()
        except (OSError, ValueError):
            pass
        answers.send_bytes(json.dumps(message).encode())

    grader.report_stage = lambda what: send({"stage": what})
    # At the time limit, faulthandler (from a thread of its own, so even a loop that never
    # yields cannot stop it) writes where the file's code is to the parent, and ends us: a
    # child whose parent died ends too.
    faulthandler.dump_traceback_later(time_limit, exit=True, file=dump)
    try:
        results = grader.grade_file(BY_NAME[name], Path(path))
        message = {"results": [grader.result_to_json(r) for r in results]}
    except UserError as e:
        message = {"error": str(e)}
    except BaseException:  # anything else is a bug in the grader: we keep its traceback
        message = {"bug": traceback.format_exc()}
    faulthandler.cancel_dump_traceback_later()
    send(message)
    # Straight out, without Python's shutdown: a thread the file started must not keep us alive.
    os._exit(0)


class Room:
    """One file being graded in its child process, watched from the parent."""

    def __init__(self, exercise, path, time_limit):
        ctx = context()
        self.exercise, self.path, self.time_limit = exercise, path, time_limit
        self.answers, answers_w = ctx.Pipe(duplex=False)
        self.output, output_w = ctx.Pipe(duplex=False)
        self.dump, dump_w = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=child, args=(exercise.name, str(path), os.getcwd(), answers_w, output_w, dump_w, time_limit),
                                   daemon=True)
        with main_module_hidden():
            self.process.start()
        for end in (answers_w, output_w, dump_w):
            end.close()
        self.launched = time.monotonic()
        self.started = None  # when the child reported its first step: the time limit counts from there
        self.stage = None
        self.printed, self.cut_chars, self.cut_lines = b"", 0, 0
        self.traceback = b""
        self.answer = None
        self.timed_out = False

    @property
    def done(self):
        return self.answer is not None

    def waitables(self):
        return [c for c in (self.answers, self.output, self.dump) if not c.closed] + [self.process.sentinel]

    def next_event(self):
        """When we must look again even if the child says nothing."""
        if self.started is None:
            return self.launched + STARTUP_LIMIT
        return self.started + self.time_limit + DUMP_GRACE

    def keep(self, data):
        """Keep what the file printed, up to SHOWN_LINES lines and SHOWN_CHARS characters,
        counting what we leave out."""
        kept = data[: max(0, SHOWN_CHARS - len(self.printed))]
        room_lines = SHOWN_LINES - self.printed.count(b"\n")
        if kept.count(b"\n") > room_lines:
            kept = b"".join(kept.splitlines(keepends=True)[: max(room_lines, 0)])
        self.printed += kept
        rest = data[len(kept):]
        self.cut_chars += len(rest.decode("utf-8", errors="replace"))
        self.cut_lines += rest.count(b"\n")

    def read(self, ready):
        for pipe in (self.output, self.dump):
            if pipe in ready and not pipe.closed:
                try:
                    data = os.read(pipe.fileno(), 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    pipe.close()
                elif pipe is self.output:
                    self.keep(data)
                else:
                    self.traceback += data
        if self.answers in ready and not self.answers.closed:
            try:
                message = json.loads(self.answers.recv_bytes())
            except (EOFError, OSError):
                self.answers.close()
                return
            if "stage" in message:
                self.stage = message["stage"]
                if self.started is None:
                    self.started = time.monotonic()
            else:
                self.answer = message

    def drain(self, pipe, seconds):
        """Read what is still coming through `pipe` for up to `seconds`."""
        end = time.monotonic() + seconds
        while not pipe.closed and time.monotonic() < end and wait([pipe], timeout=0.05):
            self.read([pipe])

    def step(self, ready):
        self.read(ready)
        now = time.monotonic()
        if self.answer is not None:
            self.drain(self.output, 0.5)
        elif self.started is None and now > self.launched + STARTUP_LIMIT:
            self.answer = {"error": f"{self.path}: the grader's child process did not start within {STARTUP_LIMIT:g} s; try again"}
        elif self.traceback or (self.started is not None and now > self.started + self.time_limit + DUMP_GRACE):
            self.drain(self.dump, 0.5)  # faulthandler writes its traceback in several pieces, then ends the child
            self.timed_out = True
            self.answer = {"error": self.time_message()}
        elif self.answers.closed and not self.process.is_alive():
            self.answer = {"error": self.ended_message()}
        if self.answer is not None:
            self.stop()

    def stop(self):
        self.process.kill()
        self.process.join()
        for pipe in (self.answers, self.output, self.dump):
            pipe.close()

    def time_message(self):
        frames = re.findall(rb'File "(.*)", line (\d+) in (\S+)', self.traceback)
        mine = [(int(line), func.decode()) for file, line, func in frames if file.decode(errors="replace") == str(self.path)]
        where = f"line {mine[0][0]}, in {mine[0][1]}: " if mine else ""  # faulthandler lists the innermost call first
        what = "the file had not finished running" if self.stage == "running the file" else f"{self.stage} had not returned"
        return (f"{self.path}: {where}{what} after {self.time_limit:g} s, so the grader stopped it (an endless loop? a right "
                "file grades in well under a second)")

    def ended_message(self):
        code = self.process.exitcode
        how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"ended (exit status {code})"
        during = {None: "before it ran your file", "running the file": "while running the file"}.get(self.stage, f"in {self.stage}")
        return (f"{self.path}: the process running your file {how} {during}, without returning: os._exit, or a crash, ends "
                "a program at once; the grader needs your code to return")

    def results(self):
        """The graded results; UserError with the child's one line if there are none."""
        if "error" in self.answer:
            raise UserError(self.answer["error"])
        if "bug" in self.answer:
            raise RuntimeError("the grader failed in its child process:\n" + self.answer["bug"])
        return [grader.result_from_json(r) for r in self.answer["results"]]

    def shown_output(self):
        """What the file printed, as we pass it on ('' when it printed nothing)."""
        text = self.printed.decode("utf-8", errors="replace")
        if self.cut_chars:
            if not text.endswith("\n"):
                text += "\n"
            text += (f"[the grader cut the rest of what your file printed: {self.cut_chars:,} more characters, "
                     f"{self.cut_lines:,} more lines]\n")
        return text


def run(rooms):
    """Watch every room until each has its answer; on Ctrl-C, stop every child first."""
    try:
        while not all(r.done for r in rooms):
            live = [r for r in rooms if not r.done]
            timeout = min(r.next_event() for r in live) - time.monotonic()
            ready = wait([w for r in live for w in r.waitables()], timeout=min(max(timeout, 0.0) + 0.01, 1.0))
            for r in live:
                r.step(ready)
    finally:
        for r in rooms:
            if r.process.is_alive():
                r.process.kill()
    return rooms


def grade(exercise, path, time_limit=None):
    """Grade one file in its child process: the finished Room (.results(), .shown_output())."""
    return run([Room(exercise, path, time_limit or TIME_LIMIT)])[0]


def grade_all(pairs, time_limit=None):
    """Grade several files at once, each in its own child process: [Room]."""
    return run([Room(exercise, path, time_limit or TIME_LIMIT) for exercise, path in pairs])
