"""photosr.io loading: orientation, every mode, 16 bits, ICC, refusals."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from imaging_helpers import (
    STORED_FOR_ORIENTATION,
    assert_close,
    asymmetric_image,
    asymmetric_rgb,
    exif_bytes,
    make_grey_icc,
    make_rgb_icc,
    png_16bit_bytes,
)
from PIL import Image, ImageCms, ImageOps

from photosr import io as pio
from photosr.errors import ImageReadError, ImageTooLargeError
from photosr.image import Photo
from photosr.io import load_photo, photo_from_pil


def _stored(orientation: int, upright: Image.Image) -> Image.Image:
    op = STORED_FOR_ORIENTATION[orientation]
    return upright if op is None else upright.transpose(op)


# ------------------------------------------------------------------------------------------ orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_made_upright(tmp_path: Path, orientation: int) -> None:
    upright = Image.fromarray(asymmetric_rgb(24, 16))
    stored = _stored(orientation, upright)
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif_bytes(orientation))
    photo = load_photo(path)
    assert photo.info.orientation == orientation
    assert photo.size == (24, 16)
    assert np.array_equal(np.rint(photo.rgb * 255).astype(np.uint8), np.asarray(upright))
    # Same answer as Pillow's own exif_transpose, an independent implementation.
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(img)), np.asarray(upright))
    assert photo.rgb.flags.c_contiguous


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_in_jpeg_and_dpi_swap(tmp_path: Path, orientation: int) -> None:
    upright = Image.fromarray(asymmetric_rgb(32, 16))
    path = tmp_path / "o.jpg"
    _stored(orientation, upright).save(path, quality=100, exif=exif_bytes(orientation), dpi=(300, 150))
    photo = load_photo(path)
    assert photo.size == (32, 16)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(np.rint(photo.rgb * 255).astype(np.uint8), expected)
    assert np.abs(photo.rgb * 255 - np.asarray(upright)).mean() < 8  # a wrong turn gives ~60
    expected_dpi = (150.0, 300.0) if orientation in (6, 8) else (300.0, 150.0)
    assert photo.info.dpi == pytest.approx(expected_dpi)


def test_orientation_applies_to_alpha_too(tmp_path: Path) -> None:
    upright = asymmetric_image("RGBA", 20, 10)
    path = tmp_path / "a.png"
    _stored(6, upright).save(path, exif=exif_bytes(6))
    photo = load_photo(path)
    assert np.array_equal(np.rint(photo.alpha * 255).astype(np.uint8), np.asarray(upright)[..., 3])


def test_bad_orientation_values_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    Image.fromarray(asymmetric_rgb()).save(path, exif=exif_bytes(orientation=9))
    photo = load_photo(path)
    assert photo.info.orientation == 1 and photo.size == (24, 16)


# ------------------------------------------------------------------------------------------ every mode

_RGB8 = asymmetric_rgb().astype(np.float32) / 255
_GREY8 = np.asarray(Image.fromarray(asymmetric_rgb()).convert("L"), dtype=np.float32) / 255

# mode -> (grey, has alpha, tolerance against the RGB source in 0..1 units, or None to skip values)
_MODES = {
    "1": (True, False, None),
    "L": (True, False, 1e-6),
    "LA": (True, True, 1e-6),
    "La": (True, True, 0.02),
    "P": (False, False, None),
    "PA": (False, True, None),
    "RGB": (False, False, 1e-6),
    "RGBA": (False, True, 1e-6),
    "RGBa": (False, True, 0.02),
    "RGBX": (False, False, 1e-6),
    "CMYK": (False, False, 1e-6),
    "YCbCr": (False, False, 0.025),
    "LAB": (False, False, None),
    "HSV": (False, False, 0.03),
    "I;16": (True, False, 1e-6),
    "I;16L": (True, False, 1e-6),
    "I;16B": (True, False, 1e-6),
    "I": (True, False, 1e-6),
    "F": (True, False, 1e-6),
}


def _check_photo(photo: Photo, mode: str) -> None:
    grey, has_alpha, tol = _MODES[mode]
    assert photo.rgb.shape == (16, 24, 3) and photo.rgb.dtype == np.float32
    assert photo.rgb.min() >= 0.0 and photo.rgb.max() <= 1.0
    assert photo.info.grey is grey, mode
    assert (photo.alpha is not None) is has_alpha, mode
    if grey:
        assert np.array_equal(photo.rgb[..., 0], photo.rgb[..., 1])
        assert np.array_equal(photo.rgb[..., 1], photo.rgb[..., 2])
    if tol is not None:
        if mode.startswith(("I", "F")):  # the deep-grey builders take the green channel
            expected = np.repeat(_RGB8[..., 1:2], 3, axis=2)
        else:
            expected = np.repeat(_GREY8[..., None], 3, axis=2) if grey else _RGB8
        assert_close(photo.rgb, expected, tol, mode)


@pytest.mark.parametrize("mode", sorted(_MODES))
def test_every_pillow_mode_normalizes(mode: str) -> None:
    img = asymmetric_image(mode)
    photo = photo_from_pil(img)
    _check_photo(photo, mode)
    assert photo.info.mode == mode
    assert photo.info.bit_depth == (16 if mode in ("I;16", "I;16L", "I;16B", "I", "F") else 8)


def test_lab_goes_through_littlecms() -> None:
    lab = asymmetric_image("LAB")
    expected = np.asarray(lab.convert("RGB"), dtype=np.float32) / 255  # Pillow and LittleCMS agree here
    assert_close(photo_from_pil(lab).rgb, expected, 1.01 / 255, "LAB")


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("1", ".png"),
        ("L", ".png"),
        ("LA", ".png"),
        ("P", ".png"),
        ("P", ".gif"),
        ("RGB", ".png"),
        ("RGBA", ".png"),
        ("RGBA", ".webp"),
        ("CMYK", ".tif"),
        ("CMYK", ".jpg"),
        ("I;16", ".png"),
        ("I;16", ".tif"),
        ("I;16B", ".tif"),
        ("F", ".tif"),
        ("I", ".tif"),
        ("LAB", ".tif"),
    ],
)
def test_modes_from_files(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    kwargs = {"lossless": True} if suffix == ".webp" else {"quality": 100} if suffix == ".jpg" else {}
    asymmetric_image(mode).save(path, **kwargs)
    photo = load_photo(path)
    with Image.open(path) as img:
        decoded_mode = img.mode
    if suffix in (".jpg", ".gif"):
        assert photo.rgb.shape == (16, 24, 3) and photo.info.grey is False
        return
    _check_photo(photo, decoded_mode if decoded_mode in _MODES else mode)


def test_palette_transparency_index_gives_alpha(tmp_path: Path) -> None:
    idx = np.zeros((6, 8), dtype=np.uint8)
    idx[2:4, 2:6] = 1
    img = Image.fromarray(idx, "P")
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    path = tmp_path / "trns.png"
    img.save(path, transparency=0)
    photo = load_photo(path)
    assert photo.alpha is not None
    assert np.array_equal(photo.alpha, (idx == 1).astype(np.float32))
    assert_close(photo.rgb[3, 3], [200 / 255, 100 / 255, 50 / 255], 1e-6, "opaque palette colour")
    img.save(tmp_path / "plain.png")
    assert load_photo(tmp_path / "plain.png").alpha is None


def test_grey_palette_and_equal_rgb_count_as_grey(tmp_path: Path) -> None:
    grey = Image.fromarray(asymmetric_rgb()[..., 0]).convert("RGB")
    grey.convert("P").save(tmp_path / "p.png")
    grey.save(tmp_path / "rgb.png")
    assert load_photo(tmp_path / "p.png").info.grey
    assert load_photo(tmp_path / "rgb.png").info.grey
    assert not load_photo_from(asymmetric_image("RGB")).info.grey


def load_photo_from(img: Image.Image) -> Photo:
    return photo_from_pil(img)


# ---------------------------------------------------------------------------------------------- 16 bits

_DEEP = np.random.default_rng(3).integers(0, 65536, (9, 11, 4)).astype(np.uint16)
_DEEP[0, 0] = [257 * 7 + 1, 1, 65534, 3]  # values 8 bits cannot hold


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_keeps_every_bit(tmp_path: Path, channels: int) -> None:
    data = _DEEP[..., :channels] if channels != 2 else _DEEP[..., [0, 3]]
    path = tmp_path / "deep.png"
    path.write_bytes(png_16bit_bytes(data))
    photo = load_photo(path)
    assert photo.info.bit_depth == 16
    assert photo.info.grey is (channels <= 2)
    colour = data[..., :3] if channels >= 3 else np.repeat(data[..., :1], 3, axis=2)
    assert np.array_equal(np.rint(photo.rgb * 65535).astype(np.uint16), colour)
    if channels in (2, 4):
        assert np.array_equal(np.rint(photo.alpha * 65535).astype(np.uint16), data[..., -1])


def test_16bit_tiff_colour_keeps_every_bit(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "deep.tif"
    cv2.imwrite(str(path), _DEEP[..., 2::-1])  # OpenCV writes BGR
    photo = load_photo(path)
    assert photo.info.bit_depth == 16 and photo.info.format == "TIFF"
    assert np.array_equal(np.rint(photo.rgb * 65535).astype(np.uint16), _DEEP[..., :3])


def test_16bit_orientation(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    path.write_bytes(png_16bit_bytes(_DEEP[..., :3]))
    with Image.open(path) as img:
        assert img.mode == "RGB"  # Pillow alone would give 8 bits
    photo = load_photo(path)
    assert photo.rgb[0, 0, 0] * 65535 == pytest.approx(257 * 7 + 1, abs=0.01)


# ---------------------------------------------------------------------------------------------- ICC

_SRGB = ImageCms.createProfile("sRGB")


def _lcms_to_srgb(img: Image.Image, icc: bytes, mode: str = "RGB") -> np.ndarray:
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return np.asarray(ImageCms.profileToProfile(img, src, _SRGB, outputMode=mode), dtype=np.float32) / 255


def test_icc_profile_converted_to_srgb_and_kept(tmp_path: Path) -> None:
    icc = make_rgb_icc()
    img = Image.fromarray(asymmetric_rgb())
    img.save(tmp_path / "adobe.png", icc_profile=icc)
    photo = load_photo(tmp_path / "adobe.png")
    assert photo.info.icc_profile == icc
    assert_close(photo.rgb, _lcms_to_srgb(img, icc), 1e-6, "vs LittleCMS")
    assert np.abs(photo.rgb - _RGB8).max() > 0.05  # the conversion really changed something


def test_srgb_profile_is_kept_without_conversion(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(_SRGB).tobytes()
    Image.fromarray(asymmetric_rgb()).save(tmp_path / "s.png", icc_profile=icc)
    photo = load_photo(tmp_path / "s.png")
    assert photo.info.icc_profile == icc
    assert_close(photo.rgb, _RGB8, 1e-6, "sRGB untouched")


def test_grey_profile_keeps_grey(tmp_path: Path) -> None:
    icc = make_grey_icc(1.8)
    img = Image.fromarray(asymmetric_rgb()[..., 0])
    img.save(tmp_path / "g.png", icc_profile=icc)
    photo = load_photo(tmp_path / "g.png")
    assert photo.info.grey and photo.info.icc_profile == icc
    assert_close(photo.rgb, _lcms_to_srgb(img, icc), 1.5 / 255, "grey vs LittleCMS")


def test_16bit_icc_converted_in_float(tmp_path: Path) -> None:
    icc = make_rgb_icc()
    rgb8 = asymmetric_rgb()
    deep = rgb8.astype(np.uint16) * 257
    photo = photo_from_pil(Image.fromarray(rgb8))  # reference point: what 8 bits give
    assert photo.info.icc_profile is None
    out, used = pio._icc_float_to_srgb(deep.astype(np.float32) / 65535, icc)
    assert used == icc
    assert_close(out, _lcms_to_srgb(Image.fromarray(rgb8), icc), 1.0 / 255, "float path vs LittleCMS")


def test_mismatched_profile_is_ignored() -> None:
    img = asymmetric_image("L")
    img.info["icc_profile"] = make_rgb_icc()
    photo = photo_from_pil(img)
    assert photo.info.icc_profile is None and photo.info.grey
    assert_close(photo.rgb[..., 0], _GREY8, 1e-6, "untouched grey")


def test_cmyk_without_profile_uses_pillow_conversion() -> None:
    cmyk = asymmetric_image("CMYK")
    photo = photo_from_pil(cmyk)
    assert_close(photo.rgb, np.asarray(cmyk.convert("RGB"), np.float32) / 255, 1e-6, "CMYK")


# ---------------------------------------------------------------------------------------------- refusals


def _expect(path: Path, error: type, *words: str, **kwargs) -> ImageReadError:
    with pytest.raises(error) as info:
        load_photo(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return info.value


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.jpg", ImageReadError, "no such file")
    _expect(tmp_path, ImageReadError, "directory")


def test_not_an_image_and_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello, not a photo")
    _expect(tmp_path / "notes.jpg", ImageReadError, "not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    _expect(tmp_path / "empty.png", ImageReadError, "empty")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect(path, ImageReadError, "truncated")


def test_decompression_bomb_refused_with_hint(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 50)).save(path)
    err = _expect(path, ImageTooLargeError, "max_pixels", max_pixels=4999)
    assert "100x50" in str(err)
    assert load_photo(path, max_pixels=5000).size == (100, 50)


def test_no_limit_lifts_pillows_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse 5000 px
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert load_photo(path, max_pixels=None).size == (100, 50)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    _expect(path, ImageTooLargeError, max_pixels=2000)


def test_animated_gif_takes_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    photo = load_photo(tmp_path / "anim.gif")
    assert photo.info.frames == 3
    assert_close(photo.rgb[4, 4], [1.0, 0.0, 0.0], 1e-6, "first frame")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    Image.new("RGB", (4, 4)).save(path)
    path.chmod(0)
    _expect(path, ImageReadError, "permission")


def test_heif_without_pillow_heif_hints_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "phone.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    monkeypatch.setattr(pio, "_heif_registered", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails as if not installed
    _expect(path, ImageReadError, "pip install 'photosr[heif]'")


def test_heif_opens_through_pillow_heif(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "phone.heic"
    try:
        pillow_heif.from_pillow(Image.fromarray(asymmetric_rgb(64, 48))).save(path, quality=95)
    except (RuntimeError, ValueError, OSError) as err:  # wheels without an HEVC encoder
        pytest.skip(f"no HEIF encoder: {err}")
    photo = load_photo(path)
    assert photo.size == (64, 48)
    assert np.abs(photo.rgb - asymmetric_rgb(64, 48) / 255).mean() < 0.05


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_tiff_orientation_and_exif_tags(tmp_path: Path, orientation: int) -> None:
    """Pillow turns TIFFs upright itself while loading; photosr must not turn them twice."""
    upright = Image.fromarray(asymmetric_rgb(24, 16))
    path = tmp_path / "o.tif"
    _stored(orientation, upright).save(path, exif=exif_bytes(orientation))
    photo = load_photo(path)
    assert photo.info.orientation == orientation
    assert np.array_equal(np.rint(photo.rgb * 255).astype(np.uint8), np.asarray(upright))
    exif = Image.Exif()
    exif.load(photo.info.exif)
    assert exif[0x010F] == "PhotosrCam" and 0x0111 not in exif  # camera kept, strip layout not
    assert exif.get_ifd(0x8825)[1] == "N"


def test_heif_orientation_applied_once(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    upright = Image.fromarray(asymmetric_rgb(64, 48))
    path = tmp_path / "turned.heic"
    try:
        heif = pillow_heif.from_pillow(_stored(6, upright))
        heif.save(path, quality=95, exif=exif_bytes(6))
    except (RuntimeError, ValueError, OSError) as err:
        pytest.skip(f"no HEIF encoder: {err}")
    photo = load_photo(path)
    assert photo.size == (64, 48) and photo.info.orientation == 6
    error = np.abs(photo.rgb * 255 - np.asarray(upright)).mean()
    turned_twice = np.asarray(upright.transpose(Image.Transpose.ROTATE_180))
    assert error < 20 and error < np.abs(photo.rgb * 255 - turned_twice).mean() / 3


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_colour_key_transparency_8bit(tmp_path: Path, mode: str) -> None:
    img = asymmetric_image(mode)
    key = img.getpixel((3, 2))
    path = tmp_path / "key.png"
    img.save(path, transparency=key)
    photo = load_photo(path)
    assert photo.alpha is not None and photo.alpha[2, 3] == 0.0
    values = np.asarray(img)
    match = values == key if mode == "L" else np.all(values == np.asarray(key), axis=-1)
    assert np.array_equal(photo.alpha == 0.0, match)
    assert photo.info.grey is (mode == "L")


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_key_transparency_16bit(tmp_path: Path, channels: int) -> None:
    data = _DEEP[..., :channels].copy()
    key = tuple(int(v) for v in data[4, 5])
    data[1, 1] = key
    path = tmp_path / "key16.png"
    path.write_bytes(png_16bit_bytes(data, trns=key))
    photo = load_photo(path)
    assert photo.info.bit_depth == 16
    expected = np.all(data == np.asarray(key, dtype=np.uint16), axis=-1)
    assert np.array_equal(photo.alpha == 0.0, expected) and expected.sum() >= 2


def test_path_argument_only_names_the_photo(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    src.write_bytes(png_16bit_bytes(_DEEP[..., :3]))
    with Image.open(src) as img:
        photo = photo_from_pil(img, path=tmp_path / "elsewhere.png")
    assert photo.info.path == tmp_path / "elsewhere.png" and photo.info.bit_depth == 16
    assert np.array_equal(np.rint(photo.rgb * 65535).astype(np.uint16), _DEEP[..., :3])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about each broken TIFF tag
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # a damaged size field
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "PNG16"])
def test_corrupted_files_only_raise_read_errors(tmp_path: Path, fmt: str) -> None:
    """Seeded byte flips and cuts: every outcome is a Photo or an ImageReadError, never a traceback."""
    buffer = io.BytesIO()
    if fmt == "PNG16":
        data = png_16bit_bytes(_DEEP[..., :3])
    else:
        img = asymmetric_image("RGB" if fmt == "JPEG" else "RGBA", 32, 24)
        kwargs = {"exif": exif_bytes(6)} if fmt != "GIF" else {}
        img.save(buffer, format=fmt, **kwargs)
        data = buffer.getvalue()
    rng = np.random.default_rng(7)
    path = tmp_path / f"fuzz.{fmt.lower()}"
    for i in range(40):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        if i % 4 == 0:
            damaged = damaged[: int(rng.integers(1, len(damaged)))]
        path.write_bytes(bytes(damaged))
        try:
            photo = load_photo(path)
        except ImageReadError as err:
            assert str(path) in str(err)
        else:
            assert photo.rgb.dtype == np.float32 and np.isfinite(photo.rgb).all()


def test_metadata_recorded(tmp_path: Path) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="1"/></x:xmpmeta>'
    path = tmp_path / "meta.jpg"
    Image.fromarray(asymmetric_rgb()).save(path, exif=exif_bytes(1), xmp=xmp, dpi=(240, 240))
    photo = load_photo(str(path))  # str paths work too
    assert photo.info.path == path and photo.info.format == "JPEG" and photo.info.mode == "RGB"
    assert photo.info.xmp == xmp
    assert photo.info.dpi == pytest.approx((240, 240))
    assert b"PhotosrCam" in photo.info.exif
    assert photo.info.frames == 1 and photo.info.bit_depth == 8 and not photo.info.grey


def test_permission_error_from_open_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated, since the tests may run as root (which reads anything)."""
    path = tmp_path / "locked.png"
    Image.new("RGB", (4, 4)).save(path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    _expect(path, ImageReadError, "permission denied")


def test_unreadable_avif_names_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "pic.avif"
    path.write_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 16)
    _expect(path, ImageReadError, "AVIF")
