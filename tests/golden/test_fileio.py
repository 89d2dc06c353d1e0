"""Atomic writes: all or nothing, ordinary permissions, no temporary files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from golden import fileio


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "report.json"
    fileio.write_atomic(target, "one")
    fileio.write_atomic(target, "two")
    assert target.read_text() == "two"
    assert list(target.parent.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")

    def explode(*args):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", explode)
    with pytest.raises(OSError, match="disk full"):
        fileio.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_a_failing_writer_leaves_nothing(tmp_path):
    def writer(path):
        open(path, "w").write("partial")
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        fileio.write_atomic_with(tmp_path / "y.bin", writer)
    assert list(tmp_path.iterdir()) == []
