"""Self-ensemble (`--ensemble N`, `engine.SelfEnsemble`): the 8 flips/transposes and their inverses, the
average the wrapper returns, and the option through the pipeline and the CLI.

`conv_model` has random, unsymmetric 3x3 kernels, so it is not flip-equivariant and its ensemble output
differs from a single run; `nearest_upscale_model` is equivariant, so its ensemble output equals a single
run's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_image
from onnx_models import conv_model, nearest_upscale_model, red_mask_model, save_model, write_plugin
from PIL import Image

from photosr.cli import main
from photosr.engine import ModelSession, SelfEnsemble, dihedral, run_tiled, undo_dihedral
from photosr.errors import UsageError
from photosr.pipeline import Pipeline, ProcessOptions
from photosr.plugins import PluginRegistry
from photosr.tasks import DewatermarkTask


def test_the_eight_views_are_distinct_and_each_undoes():
    batch = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # H != W: the transpose shows
    views = [dihedral(batch, k) for k in range(8)]
    assert [v.shape[2:] for v in views] == [(4, 5)] * 4 + [(5, 4)] * 4
    assert len({v.tobytes() for v in map(np.ascontiguousarray, views)}) == 8
    for k, view in enumerate(views):
        np.testing.assert_array_equal(undo_dihedral(view, k), batch)
    np.testing.assert_array_equal(views[1], batch[..., ::-1])  # k=1 flips left-right
    np.testing.assert_array_equal(views[4], batch.transpose(0, 1, 3, 2))  # k=4 swaps H and W


class RampAdder:
    """A stand-in model that is not flip-equivariant: adds the column index (0..W-1) to every pixel."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return batch + np.arange(batch.shape[3], dtype=np.float32)


def test_ensemble_averages_the_turned_back_outputs():
    batch = np.random.default_rng(0).random((1, 3, 4, 6), dtype=np.float32)
    model = RampAdder()
    # id + left-right flip: the ramp and its mirror average to (W-1)/2 everywhere.
    np.testing.assert_allclose(SelfEnsemble(model, 2).run(batch), batch + 2.5, rtol=1e-6)
    assert model.shapes == [(1, 3, 4, 6)] * 2
    # All 8: the transposed views add the row index (0..H-1) instead, which averages to (H-1)/2.
    model.shapes.clear()
    np.testing.assert_allclose(SelfEnsemble(model, 8).run(batch), batch + (2.5 + 1.5) / 2, rtol=1e-6)
    assert model.shapes == [(1, 3, 4, 6)] * 4 + [(1, 3, 6, 4)] * 4
    with pytest.raises(UsageError, match="ensemble must be one of 1, 2, 4, 8"):
        SelfEnsemble(model, 3)


def test_a_gate_runs_the_other_views_only_on_the_items_it_picks():
    batch = np.random.default_rng(0).random((3, 3, 4, 6), dtype=np.float32)
    model = RampAdder()
    ramp = np.arange(6, dtype=np.float32)
    asked = []

    def gate(first: np.ndarray) -> np.ndarray:
        asked.append(first.copy())
        return np.array([True, False, True])

    got = SelfEnsemble(model, 2, gate=gate).run(batch)
    np.testing.assert_allclose(asked[0], batch + ramp, rtol=1e-6)  # the gate sees the first view
    np.testing.assert_allclose(got[[0, 2]], batch[[0, 2]] + 2.5, rtol=1e-6)  # picked: the mean of 2
    np.testing.assert_allclose(got[1], batch[1] + ramp, rtol=1e-6)  # left out: the first view as it was
    assert model.shapes == [(3, 3, 4, 6), (2, 3, 4, 6)]  # the flipped view ran on the 2 picked only
    # Nothing picked: one run; everything picked: the plain ensemble.
    model.shapes.clear()
    np.testing.assert_allclose(
        SelfEnsemble(model, 4, gate=lambda o: np.zeros(3, bool)).run(batch), batch + ramp
    )
    assert model.shapes == [(3, 3, 4, 6)]
    every = SelfEnsemble(model, 2, gate=lambda o: np.ones(3, bool)).run(batch)
    np.testing.assert_array_equal(every, SelfEnsemble(model, 2).run(batch))


def test_tiled_ensemble_equals_the_mean_of_whole_runs_on_the_views(tmp_path: Path):
    # Receptive-field radius 2 <= overlap/4, so tiled runs equal whole runs and the views' tile grids
    # (which differ) cannot matter; mid-grey input keeps every output inside 0..1, so clipping cannot either.
    session = ModelSession(save_model(conv_model(2, layers=2), tmp_path / "m.onnx"))
    image = 0.3 + 0.4 * np.random.default_rng(1).random((37, 50, 3), dtype=np.float32)
    got = run_tiled(SelfEnsemble(session, 8), image, scale=2, tile=24, overlap=8)
    nchw = image.transpose(2, 0, 1)[None]
    views = [undo_dihedral(session.run(np.ascontiguousarray(dihedral(nchw, k))), k) for k in range(8)]
    expected = np.mean(views, axis=0)[0].transpose(1, 2, 0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    single = run_tiled(session, image, scale=2, tile=24, overlap=8)
    assert np.abs(got - single).max() > 1e-3  # the model is not equivariant: the ensemble changed it


def _pipeline(folder: Path, ensemble: int) -> Pipeline:
    options = ProcessOptions(tasks=("upscale",), plugins=(str(folder),), ensemble=ensemble, format="png")
    return Pipeline(options, registry=PluginRegistry())


def _nchw(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64).transpose(2, 0, 1)[None]


def test_pipeline_ensemble_is_the_mean_of_single_runs_on_flipped_photos(tmp_path: Path):
    # Mid-grey pixels and a small residual keep every view inside 0..255, so no clipping differs.
    rgb = np.random.default_rng(2).integers(70, 186, (30, 44, 3), dtype=np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    conv = write_plugin(tmp_path / "conv2", task="upscale", scale=2, model=conv_model(2, layers=2))
    assert _pipeline(conv, 8).process_file(src, tmp_path / "ens.png").status == "ok"
    single = _pipeline(conv, 1)
    views = []
    for k in range(8):
        view = np.ascontiguousarray(dihedral(rgb.transpose(2, 0, 1)[None], k)[0].transpose(1, 2, 0))
        Image.fromarray(view).save(tmp_path / f"v{k}.png")
        assert single.process_file(tmp_path / f"v{k}.png", tmp_path / f"o{k}.png").status == "ok"
        views.append(undo_dihedral(_nchw(tmp_path / f"o{k}.png"), k))
    got, mean = _nchw(tmp_path / "ens.png"), np.mean(views, axis=0)
    assert got.shape == mean.shape == (1, 3, 60, 88)
    assert np.abs(got - mean).max() <= 1  # each view rounded to 8 bits on its own
    assert np.abs(got - views[0]).max() >= 3  # and not just the single run


def test_ensemble_leaves_an_equivariant_model_alone(tmp_path: Path):
    src = write_image(tmp_path / "in.png", 40, 56)
    nearest = write_plugin(tmp_path / "near2", task="upscale", scale=2, model=nearest_upscale_model(2))
    outputs = []
    for n in (1, 2, 4, 8):
        assert _pipeline(nearest, n).process_file(src, tmp_path / f"{n}.png").status == "ok"
        outputs.append(_nchw(tmp_path / f"{n}.png"))
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])


def test_options_and_cli_refuse_other_ensemble_sizes(tmp_path: Path):
    with pytest.raises(UsageError, match="ensemble must be one of 1, 2, 4, 8, got 3"):
        ProcessOptions(ensemble=3)
    src = write_image(tmp_path / "in.png", 16, 16)
    plugin = write_plugin(tmp_path / "conv2", task="upscale", scale=2, model=conv_model(2, layers=1))
    args = ["run", str(src), "-o", str(tmp_path / "out"), "-t", "upscale", "-p", str(plugin)]
    result = CliRunner().invoke(main, [*args, "--ensemble", "3"])
    assert result.exit_code == 2 and "ensemble must be one of 1, 2, 4, 8" in result.output
    result = CliRunner().invoke(main, [*args, "--ensemble", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "in.png").size == (32, 32)


def test_the_pipelines_light_copies_of_the_engines_choices_agree():
    import photosr.engine
    import photosr.pipeline

    assert photosr.pipeline.ENSEMBLES == photosr.engine.ENSEMBLES
    assert photosr.pipeline.PRECISIONS == photosr.engine.PRECISIONS
    assert photosr.pipeline.DEVICES == photosr.engine.DEVICES


def test_a_plugin_can_ask_for_its_own_ensemble_size_and_the_user_overrides_it(tmp_path: Path):
    """[model] ensemble = 2: photosr runs it at 2 unless told; --ensemble 1 (or any size) wins."""
    rgb = np.random.default_rng(3).integers(70, 186, (30, 44, 3), dtype=np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    model = conv_model(2, layers=2)
    plain = write_plugin(tmp_path / "plain", task="upscale", scale=2, model=model)
    pair = write_plugin(
        tmp_path / "pair", task="upscale", scale=2, model=model, extra_model_fields={"ensemble": 2}
    )
    assert PluginRegistry().get(pair).manifest.model.ensemble == 2
    outs = {}
    for label, folder, n in (
        ("plain 2", plain, 2),
        ("pair", pair, None),
        ("pair 1", pair, 1),
        ("plain", plain, None),
    ):
        assert _pipeline(folder, n).process_file(src, tmp_path / f"{label}.png").status == "ok"
        outs[label] = _nchw(tmp_path / f"{label}.png")
    np.testing.assert_array_equal(outs["pair"], outs["plain 2"])  # the manifest's size by default
    np.testing.assert_array_equal(outs["pair 1"], outs["plain"])  # the user's size over it
    assert np.abs(outs["pair"] - outs["pair 1"]).max() >= 3


def test_dewatermark_runs_the_other_views_only_on_tiles_where_the_first_found_an_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """One red square in a corner of a dark photo: the mask (the red channel) finds it in one tile only,
    so the flipped view runs on that tile alone, and the output there is the full ensemble's."""
    rgb = np.random.default_rng(4).integers(20, 50, (88, 168, 3), dtype=np.uint8)
    rgb[10:30, 12:36] = (250, 40, 40)
    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    # Tiles of 48 overlapping by 8: rows start at 0 and 40, columns at 0, 40, 80 and 120, so only the
    # first tile holds the square, and only it covers rows and columns 0..39.
    plugin = write_plugin(tmp_path / "dw", task="dewatermark", scale=1, model=red_mask_model(), tile=48)
    tiles = []
    run = ModelSession.run
    monkeypatch.setattr(ModelSession, "run", lambda self, batch: tiles.append(len(batch)) or run(self, batch))

    def process(label: str, ensemble: int) -> np.ndarray:
        tiles.clear()
        options = ProcessOptions(
            tasks=("dewatermark",), plugins=(str(plugin),), ensemble=ensemble, format="png"
        )
        assert Pipeline(options, registry=PluginRegistry()).process_file(src, tmp_path / label).ok
        return _nchw(tmp_path / label)[0]

    single = process("1.png", 1)
    assert sum(tiles) == 8
    gated = process("gated.png", 2)
    assert sum(tiles) == 9  # the flipped view ran on the square's tile only
    monkeypatch.setattr(DewatermarkTask, "ensemble_gate", lambda self: None)
    full = process("full.png", 2)
    assert sum(tiles) == 16
    # Rows and columns 36..39 still see the next tiles through the inpainting step's 4-px box low-pass.
    np.testing.assert_array_equal(gated[:, :36, :36], full[:, :36, :36])
    assert np.abs(gated - single).max() >= 3  # the second view did change the square
    # The tiles left out keep their one view, which reaches the output only where they blend into the
    # square's feathered rim (grow 3 px, feathered to 12 px past it): nowhere else does anything change.
    rows, cols = np.nonzero(np.abs(gated - full).max(axis=0))
    assert rows.max() < 30 + 12 and cols.max() < 36 + 12
    source = _nchw(src)[0]
    np.testing.assert_array_equal(gated[:, 45:], source[:, 45:])
    np.testing.assert_array_equal(gated[:, :, 50:], source[:, :, 50:])
