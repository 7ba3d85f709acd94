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
