"""`photosr watch` options as a real daemon process: --config, usage errors, a tiny ONNX plugin,
the polling observer, and Ctrl-C reaching the whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from onnx_models import write_plugin
from PIL import Image
from test_watch_helpers import STATE, decodes, env, outputs, photo, photosr, start, stop, temps, wait_for

from photosr.watch import Ledger

__all__ = ["env"]  # the fixture, imported for pytest to find


def test_config_file_supplies_options_and_rejects_unknown_keys(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    photo(src / "a.png")
    config = tmp_path / "watch.toml"
    config.write_text(
        f'input = "{src.as_posix()}"\noutput = "{out.as_posix()}"\ntask = "normalize"\n'
        'format = "jpeg"\nsuffix = "_n"\nsettle = 0.2\n',
        encoding="utf-8",
    )
    daemon = start(env, "--config", str(config), log=tmp_path / "log.txt")
    try:
        wait_for(lambda: "a_n.jpg" in outputs(out), what="output named by the config")
        assert stop(daemon, signal.SIGINT) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    with Image.open(out / "a_n.jpg") as image:
        assert image.format == "JPEG"
    config.write_text('output = "x"\nstatus = true\n', encoding="utf-8")
    result = photosr(env, str(src), "--config", str(config))
    assert result.returncode == 2 and "unknown key(s) status" in result.stderr
    config.write_text('output = "x"\nsettel = 1\n', encoding="utf-8")
    result = photosr(env, str(src), "--config", str(config))
    assert result.returncode == 2 and "settel" in result.stderr and "watch.toml" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "upscale", "--plugin", "no-such-plugin"], "no-such-plugin"),
        (["--task", "sharpen"], "unknown task"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_usage_errors_exit_2_before_watching(tmp_path, env, args, message):
    (tmp_path / "in").mkdir()
    result = photosr(env, str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_tiny_onnx_plugin_through_the_daemon(tmp_path, env):
    plugins = tmp_path / "plugins"
    write_plugin(plugins / "tiny-up2", task="upscale", scale=2)
    env = {**env, "PHOTOSR_PLUGIN_PATH": str(plugins)}
    src, out = tmp_path / "in", tmp_path / "out"
    photo(src / "small.png", 7, size=(10, 6))
    daemon = start(env, str(src), "-o", str(out), "--task", "upscale", "--plugin", "tiny-up2", "--settle", "0.2",
                   log=tmp_path / "log.txt")  # fmt: skip
    try:
        wait_for(lambda: "small.png" in outputs(out), what="upscaled output")
        assert stop(daemon) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    with Image.open(out / "small.png") as image:
        assert image.size == (20, 12)
    assert "steps=upscale:tiny-up2@1.0.0" in (tmp_path / "log.txt").read_text()  # which model made it


def test_polling_observer_for_network_shares(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    args = [str(src), "-o", str(out), "--task", "normalize", "--settle", "0.2", "--poll", "0.2"]
    daemon = start(env, *args, log=tmp_path / "log.txt")
    try:
        wait_for(lambda: (out / STATE / "status.json").exists(), what="daemon up")
        photo(src / "share" / "p.jpg", 3)
        wait_for(lambda: "share/p.jpg" in outputs(out), what="output found by polling")
        assert stop(daemon) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert decodes(out / "share" / "p.jpg")


def test_ctrl_c_to_the_whole_process_group_lets_the_current_file_finish(tmp_path, env):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    command = [sys.executable, "-m", "photosr", "watch", str(src), "-o", str(out), "--task", "normalize",
               "--settle", "0.1", "--format", "png"]  # fmt: skip
    with (tmp_path / "log.txt").open("ab") as log:
        # Its own process group, as a terminal gives it: Ctrl-C reaches the daemon and its workers alike.
        daemon = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: (out / STATE / "ledger.sqlite").exists(), what="daemon up")
        big = tmp_path / "big.png"
        Image.effect_noise((2400, 1600), 64).convert("RGB").save(big)  # a second or so to normalize
        big.rename(src / "big.png")
        with Ledger(out / STATE / "ledger.sqlite") as ledger:
            wait_for(lambda: getattr(ledger.get("big.png"), "state", None) == "processing", what="processing")
            os.killpg(daemon.pid, signal.SIGINT)
            assert daemon.wait(timeout=20) == 0
            row = ledger.get("big.png")
        assert row.state == "done", row.error
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert decodes(out / "big.png") and temps(out) == []
