"""The one atomic write (aigc_edge_env.files): a file is its old content or its new content, never a part."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigc_edge_env.files import write_atomic


def test_write_atomic_writes_text_and_bytes_creating_the_folder(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a" / "b.txt", "héllo")
    write_atomic(tmp_path / "a" / "c.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "a" / "c.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt", "c.bin"]  # no temporary file left


def test_a_write_cut_short_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "result.json"
    write_atomic(path, '{"valid": true}')

    def killed(src, dst):  # the process dies between writing the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, '{"valid": fal')
    assert path.read_text() == '{"valid": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_written_file_has_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
        os.chmod(tmp_path / "new.txt", 0o640)
        write_atomic(tmp_path / "new.txt", "y")  # a file written again keeps its mode
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


def test_write_npz_writes_the_arrays_to_the_path_as_given(tmp_path: Path) -> None:
    import numpy as np

    from aigc_edge_env.files import write_npz

    write_npz(tmp_path / "arrays.npz", {"a": np.arange(3), "b": np.ones((2, 2))})
    with np.load(tmp_path / "arrays.npz") as data:
        np.testing.assert_array_equal(data["a"], np.arange(3))
        np.testing.assert_array_equal(data["b"], np.ones((2, 2)))
