# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where freebsd_ha.storage modules run commands."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass

# Parsers read English, C-locale output; numbers and dates must not be localised.
C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
PIPE_SEPARATOR = "|"


class CommandError(Exception):
    """A command failed; carries what an operator needs to see."""

    def __init__(self, msg, argv=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.msg = msg
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def to_result(self):
        """Return the keys fail_json gets besides msg."""
        result = {}
        if self.rc is not None:
            result.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr)
        return result


class StateError(Exception):
    """The system is not in a state the requested change may start from (a refusal)."""


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    duration: float = 0.0


class Runner:
    """Runs one tool: reads always run, writes only outside check mode; every argv is logged."""

    def __init__(self, module, tool, required=True):
        self.module = module
        self.tool = tool
        self.binary = module.get_bin_path(tool, required=required)
        self.commands = []

    @property
    def check_mode(self):
        return self.module.check_mode

    def argv(self, args):
        return [self.binary] + [str(arg) for arg in args]

    def read(self, args, check_rc=True, data=None):
        """Run a command that changes nothing, also in check mode; return its Result."""
        return self._run(self.argv(args), check_rc, data)

    def change(self, args, check_rc=True, data=None):
        """Run a command that changes the system; in check mode only record it and return None."""
        argv = self.argv(args)
        if self.check_mode:
            self.commands.append(argv)
            return None
        return self._run(argv, check_rc, data)

    def _run(self, argv, check_rc, data):
        self.commands.append(argv)
        started = time.monotonic()
        rc, out, err = self.module.run_command(
            argv, check_rc=False, data=data, binary_data=data is not None, environ_update=C_LOCALE
        )
        result = Result(rc, out, err, time.monotonic() - started)
        if check_rc and rc != 0:
            raise self.failure(result)
        return result

    def failure(self, result):
        """Return the CommandError for a failed result of the last command run (for callers using check_rc=False)."""
        argv = self.commands[-1]
        return CommandError(
            f"{' '.join(argv)} failed with rc {result.rc}: {result.stderr.strip() or result.stdout.strip()}",
            argv=argv,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
        )

    def change_pipeline(self, stages):
        """Run `stage1 | stage2 | ...` (argv lists, the first through this runner's tool); None in check mode.

        run_command cannot connect two processes without a shell, and a shell pipeline hides the
        exit status of every stage but the last (FreeBSD sh lacks pipefail before 15.0); so the
        pipeline is built here, and each stage's rc and stderr are kept.
        """
        stages = [self.argv(stages[0])] + [[str(arg) for arg in stage] for stage in stages[1:]]
        flat = []
        for stage in stages:
            flat.extend(([PIPE_SEPARATOR] if flat else []) + stage)
        self.commands.append(flat)
        if self.check_mode:
            return None
        started = time.monotonic()
        returncodes, stdout, stderr = run_pipeline(stages)
        duration = time.monotonic() - started
        for stage, returncode in zip(stages, returncodes):
            if returncode != 0:
                raise CommandError(
                    f"{' '.join(stage)} failed with rc {returncode} in `{' '.join(flat)}`: {stderr.strip()}",
                    argv=flat,
                    rc=returncode,
                    stdout=stdout,
                    stderr=stderr,
                )
        return Result(0, stdout, stderr, duration)


def run_pipeline(stages):
    """Run argv lists connected stdout to stdin; return (returncodes, stdout of the last, all stderr)."""
    env = dict(os.environ, **C_LOCALE)
    procs = []
    upstream = None
    for index, stage in enumerate(stages):
        last = index == len(stages) - 1
        proc = subprocess.Popen(
            stage,
            stdin=upstream if upstream is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        if upstream is not None:
            upstream.close()  # so the writer gets EPIPE when the reader dies
        upstream = None if last else proc.stdout
        procs.append(proc)
    # Drain every stderr at once: a stage blocked on a full stderr pipe would stall the pipeline.
    errors = [b""] * len(procs)
    readers = [
        threading.Thread(target=_drain, args=(proc.stderr, errors, index)) for index, proc in enumerate(procs[:-1])
    ]
    for reader in readers:
        reader.start()
    out, errors[-1] = procs[-1].communicate()
    for reader, proc in zip(readers, procs):
        reader.join()
        proc.wait()
    stderr = "".join(err.decode("utf-8", "replace") for err in errors)
    return [proc.returncode for proc in procs], out.decode("utf-8", "replace"), stderr


def _drain(stream, sink, index):
    sink[index] = stream.read()
