"""Helpers for the hostile-input tests: the CLI run in-process, one-line errors, tmpfs mounts (Linux, root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perface.cli import app

runner = CliRunner()


def cli(*args: str | os.PathLike[str]):
    """Run ``perface ARGS`` in this process; a traceback anywhere fails the test."""
    res = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output and "Traceback" not in (res.stderr or ""), res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def one_line_error(res) -> str:
    """The run's error: exactly one line on stderr starting with ``perface: error:``."""
    err = [line for line in res.stderr.strip().splitlines() if line.startswith("perface: error:")]
    assert len(err) == 1, res.stderr
    return err[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", readonly: bool = False) -> Iterator[Path]:
    """Mount a small tmpfs at ``path`` for the block (needs root on Linux; the test skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True,
                              timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root on Linux): {done.stderr.decode(errors='replace')}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)
