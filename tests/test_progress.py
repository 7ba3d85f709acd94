"""Progress of long jobs: without tqdm (the core install) one line on stderr, nothing when disabled."""

from __future__ import annotations

import builtins

import pytest

from aigc_edge_env import progress


@pytest.fixture()
def no_tqdm(monkeypatch):
    real_import = builtins.__import__

    def without_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tqdm)


def test_without_tqdm_the_count_is_drawn_on_one_line(no_tqdm, monkeypatch, capsys) -> None:
    clock = iter([0.0, 0.1, 0.2, 0.7, 0.8, 0.9, 1.0])  # a redraw at most every REDRAW_S = 0.5 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with progress.progress_bar(4, "exact", "episode") as bar:
        for _ in range(4):
            bar.update()
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == "\rexact: 1/4 episode\rexact: 3/4 episode\rexact: 4/4 episode\n"


def test_a_disabled_bar_prints_nothing(no_tqdm, capsys) -> None:
    with progress.progress_bar(3, "x", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
