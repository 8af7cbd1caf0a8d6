"""The command a run records for its model card: the real argv only when photosr itself was started."""

from __future__ import annotations

import sys

import click
import pytest

pytest.importorskip("torch")

from photosr.training.cli import _command_line  # noqa: E402


@click.command(name="train")
@click.option("--task")
@click.option("--minutes", type=int)
def _train(task: str | None, minutes: int | None) -> None:
    pass


def _recorded(argv0: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys, "argv", [argv0, "train", "--task", "restore", "--minutes", "5"])
    ctx = _train.make_context("train", ["--task", "dewatermark", "--minutes", "7"])
    return _command_line(ctx)


@pytest.mark.parametrize("argv0", ["/usr/bin/photosr", "/src/photosr/__main__.py"])
def test_photosr_started_records_its_argv(argv0: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _recorded(argv0, monkeypatch) == "photosr train --task restore --minutes 5"


@pytest.mark.parametrize("argv0", ["/venv/bin/pytest", "/venv/lib/site-packages/pytest/__main__.py"])
def test_another_program_records_the_parsed_options(argv0: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _recorded(argv0, monkeypatch) == "photosr train --task dewatermark --minutes 7"
