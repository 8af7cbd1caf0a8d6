"""photosr.io saving: formats, grey, alpha, 16 bits, EXIF, ICC, DPI, atomic writes."""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import piexif
import pytest
from imaging_helpers import (
    assert_close,
    asymmetric_image,
    asymmetric_rgb,
    exif_bytes,
    make_grey_icc,
    make_rgb_icc,
    png_16bit_bytes,
)
from PIL import Image, ImageCms

from photosr import io as pio
from photosr.errors import ImageWriteError, UsageError
from photosr.image import Photo, SourceInfo
from photosr.io import load_photo, output_format, photo_from_pil, photo_to_pil, save_photo
from photosr.resize import resize_photo

_RGB = asymmetric_rgb(24, 16).astype(np.float32) / 255


def _photo(fmt: str = "PNG", grey: bool = False, alpha: bool = False, **info) -> Photo:
    rgb = np.repeat(_RGB[..., 1:2], 3, axis=2) if grey else _RGB.copy()
    a = np.linspace(0, 1, 24 * 16, dtype=np.float32).reshape(16, 24) if alpha else None
    return Photo(rgb=rgb, alpha=a, info=SourceInfo(format=fmt, grey=grey, **info))


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*photosr-tmp*")]


# ------------------------------------------------------------------------------------- format and names


@pytest.mark.parametrize(
    ("fmt", "source", "name", "expected"),
    [
        ("keep", "JPEG", "a.png", "a.jpg"),
        ("keep", "MPO", "a", "a.jpg"),
        ("keep", "GIF", "a.gif", "a.png"),
        ("keep", None, "a.bmp", "a.png"),
        ("keep", "TIFF", "a.tiff", "a.tiff"),
        ("jpeg", "PNG", "a.jpeg", "a.jpeg"),
        ("JPG", "PNG", "a.png", "a.jpg"),
        ("webp", "PNG", "dir.v2/a", "dir.v2/a.webp"),
        ("tiff", "PNG", "a.tar.png", "a.tar.tif"),
        ("png", "PNG", "IMG_1.final", "IMG_1.final.png"),
        ("keep", "HEIF", "IMG_2.HEIC", "IMG_2.png"),
    ],
)
def test_format_and_extension(tmp_path: Path, fmt: str, source: str | None, name: str, expected: str) -> None:
    out = save_photo(_photo(source), tmp_path / name, format=fmt)
    assert out == tmp_path / expected and out.is_file()
    with Image.open(out) as img:
        assert img.format == output_format(fmt, source)
    _no_temp_files(tmp_path)


def test_bad_format_and_quality_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="bmp"):
        save_photo(_photo(), tmp_path / "a", format="bmp")
    with pytest.raises(UsageError, match="quality"):
        save_photo(_photo(), tmp_path / "a.jpg", format="jpeg", quality=0)
    assert not list(tmp_path.iterdir())


def test_jpeg_quality_changes_size(tmp_path: Path) -> None:
    photo = _photo()
    small = save_photo(photo, tmp_path / "q10.jpg", format="jpeg", quality=10).stat().st_size
    big = save_photo(photo, tmp_path / "q95.jpg", format="jpeg", quality=95).stat().st_size
    assert small < big


# ---------------------------------------------------------------------------------- grey, alpha, modes


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff", "webp"])
def test_grey_stays_grey(tmp_path: Path, fmt: str) -> None:
    out = save_photo(_photo(grey=True), tmp_path / "g", format=fmt)
    with Image.open(out) as img:
        assert img.mode == ("RGB" if fmt == "webp" else "L")  # WebP has no grey mode
    back = load_photo(out)
    assert back.info.grey or fmt == "webp"
    tol = {"jpeg": 0.05, "webp": 0.1}.get(fmt, 0.5 / 255 + 1e-6)  # lossy ones: near, lossless: exact
    assert_close(back.rgb, _photo(grey=True).rgb, tol, fmt)


def test_grey_with_alpha_and_colour_added(tmp_path: Path) -> None:
    with Image.open(save_photo(_photo(grey=True, alpha=True), tmp_path / "ga.png")) as img:
        assert img.mode == "LA"
    coloured = replace(_photo(grey=True), colour_added=True)
    coloured.rgb[..., 0] *= 0.5
    with Image.open(save_photo(coloured, tmp_path / "c.png")) as img:
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["png", "webp", "tiff"])
def test_alpha_kept_where_the_format_holds_it(tmp_path: Path, fmt: str) -> None:
    photo = _photo(alpha=True)
    out = save_photo(photo, tmp_path / "a", format=fmt)
    back = load_photo(out)
    assert back.alpha is not None
    tol = 1 / 255 if fmt != "webp" else 0.02
    assert_close(back.alpha, photo.alpha, tol, f"{fmt} alpha")


def test_jpeg_composites_alpha_over_white(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.float32)
    alpha = np.zeros((16, 16), np.float32)
    alpha[:, 8:] = 1.0
    out = save_photo(Photo(rgb=rgb, alpha=alpha), tmp_path / "a.jpg", format="jpeg")
    back = load_photo(out)
    assert back.alpha is None
    assert back.rgb[:, :6].min() > 0.95  # transparent half: white, not black
    assert back.rgb[:, 10:].max() < 0.05


def test_photo_to_pil_modes() -> None:
    assert photo_to_pil(_photo()).mode == "RGB"
    assert photo_to_pil(_photo(alpha=True)).mode == "RGBA"
    assert photo_to_pil(_photo(grey=True)).mode == "L"
    assert photo_to_pil(_photo(grey=True, alpha=True)).mode == "LA"
    assert photo_to_pil(_photo(), grey=True).mode == "L"
    deep = photo_to_pil(_photo(grey=True), bit_depth=16)
    assert deep.mode == "I;16"
    assert np.asarray(deep)[3, 5] == round(_RGB[3, 5, 1] * 65535)
    with pytest.raises(ImageWriteError):
        photo_to_pil(_photo(), bit_depth=16)
    with pytest.raises(UsageError):
        photo_to_pil(_photo(), bit_depth=12)


def test_quantization_rounds_to_nearest() -> None:
    rgb = np.zeros((1, 3, 3), np.float32)
    rgb[0, :, 0] = [0.4 / 255, 0.6 / 255, 1.0]
    assert np.asarray(photo_to_pil(Photo(rgb=rgb)))[0, :, 0].tolist() == [0, 1, 255]


def test_every_mode_round_trips_through_save(tmp_path: Path) -> None:
    for mode in ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"]:
        photo = photo_from_pil(asymmetric_image(mode))
        back = load_photo(save_photo(photo, tmp_path / mode.replace(";", "_"), format="png"))
        assert back.info.grey == photo.info.grey and (back.alpha is None) == (photo.alpha is None)
        assert_close(back.rgb, photo.rgb, 0.5 / 255 + 1e-6, mode)


# ---------------------------------------------------------------------------------------------- 16 bits

_DEEP = np.random.default_rng(5).integers(0, 65536, (9, 11, 4)).astype(np.uint16)


def _png_bit_depth(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return data[24], data[25]  # bit depth, colour type


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_round_trip_exact(tmp_path: Path, channels: int, fmt: str) -> None:
    data = _DEEP[..., :channels] if channels != 2 else _DEEP[..., [0, 3]]
    src = tmp_path / "src.png"
    src.write_bytes(png_16bit_bytes(data))
    photo = load_photo(src)
    out = save_photo(photo, tmp_path / "out", format=fmt)
    if fmt == "png":
        assert _png_bit_depth(out) == (16, {1: 0, 2: 4, 3: 2, 4: 6}[channels])
    back = load_photo(out)
    assert back.info.bit_depth == 16 and back.info.grey == photo.info.grey
    assert np.array_equal(np.rint(back.rgb * 65535), np.rint(photo.rgb * 65535))
    if channels in (2, 4):
        assert np.array_equal(np.rint(back.alpha * 65535), data[..., -1])


def test_16bit_output_readable_by_opencv(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    src = tmp_path / "src.png"
    src.write_bytes(png_16bit_bytes(_DEEP[..., :3]))
    for fmt in ("png", "tiff"):
        out = save_photo(load_photo(src), tmp_path / "out", format=fmt)
        got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and np.array_equal(got[..., ::-1], _DEEP[..., :3])


def test_16bit_source_to_jpeg_is_8bit(tmp_path: Path) -> None:
    src = tmp_path / "src.png"
    src.write_bytes(png_16bit_bytes(_DEEP[..., :3]))
    with Image.open(save_photo(load_photo(src), tmp_path / "o", format="jpeg")) as img:
        assert img.mode == "RGB"


def test_16bit_metadata_chunks(tmp_path: Path) -> None:
    photo = _photo(bit_depth=16, exif=exif_bytes(6), dpi=(300.0, 300.0))
    out = save_photo(photo, tmp_path / "deep.png")
    with Image.open(out) as img:
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        assert img.getexif()[0x0112] == 1
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"])))
        assert "sRGB" in desc
    tif = save_photo(photo, tmp_path / "deep.tif", format="tiff")
    with Image.open(tif) as img:
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        assert img.info["icc_profile"]
        exif = img.getexif()
        assert exif[0x010F] == "PhotosrCam" and exif.get(0x0112) == 1
        assert exif.get_ifd(0x8769)[0x9003] == "2021:06:05 04:03:02"
        assert exif.get_ifd(0x8825)[1] == "N"
    assert load_photo(tif).info.orientation == 1


# --------------------------------------------------------------------------------------------- metadata


def _exif_of(path: Path) -> dict:
    with Image.open(path) as img:
        raw = img.info.get("exif")
    return piexif.load(raw) if raw else {}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "tiff"])
def test_exif_kept_orientation_reset_size_fixed(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src.jpg"
    Image.fromarray(asymmetric_rgb(40, 30)).save(src, exif=exif_bytes(6, size=(40, 30)))
    photo = resize_photo(load_photo(src), (15, 20))
    out = save_photo(photo, tmp_path / "out", format=fmt)
    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[0x0112] == 1 and img.size == (15, 20)
        assert exif[0x010F] == "PhotosrCam"
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "2021:06:05 04:03:02"
        assert (sub[0xA002], sub[0xA003]) == (15, 20)
        gps = exif.get_ifd(0x8825)
        assert gps[1] == "N" and float(gps[2][0]) == 48.0
    assert load_photo(out).size == (15, 20)  # no viewer turns it again


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_strip_metadata_drops_exif_and_xmp(tmp_path: Path, fmt: str) -> None:
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    photo = _photo(exif=exif_bytes(6), xmp=xmp)
    out = save_photo(photo, tmp_path / "s", format=fmt, strip_metadata=True)
    with Image.open(out) as img:
        assert len(img.getexif()) == 0
        assert not img.info.get("xmp") and "XML:com.adobe.xmp" not in img.info
    kept = save_photo(photo, tmp_path / "k", format=fmt)
    with Image.open(kept) as img:
        xmp_out = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
        xmp_out = xmp_out.encode() if isinstance(xmp_out, str) else xmp_out
        assert b'tiff:Orientation="1"' in xmp_out


def test_broken_exif_is_dropped_not_fatal(tmp_path: Path) -> None:
    out = save_photo(_photo(exif=b"Exif\x00\x00garbage"), tmp_path / "b.jpg", format="jpeg")
    assert out.is_file()


def test_dpi_kept(tmp_path: Path) -> None:
    for fmt in ("jpeg", "png", "tiff"):
        out = save_photo(_photo(dpi=(300.0, 150.0)), tmp_path / "d", format=fmt)
        assert load_photo(out).info.dpi == pytest.approx((300, 150), abs=0.1)


# ---------------------------------------------------------------------------------------------- ICC

_SRGB = ImageCms.createProfile("sRGB")
# Low-saturation colours: Adobe RGB -> sRGB clips saturated ones, which no round trip can bring back.
_MUTED = (asymmetric_rgb(24, 16) // 5 + 100).astype(np.uint8)


def _profile_description(path: Path) -> str:
    with Image.open(path) as img:
        icc = img.info.get("icc_profile")
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))) if icc else ""


def test_output_tagged_srgb_by_default(tmp_path: Path) -> None:
    src = tmp_path / "adobe.png"
    Image.fromarray(_MUTED).save(src, icc_profile=make_rgb_icc())
    out = save_photo(load_photo(src), tmp_path / "o.jpg", format="jpeg")
    assert "sRGB" in _profile_description(out)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff"])
def test_keep_source_profile_round_trip(tmp_path: Path, fmt: str) -> None:
    icc = make_rgb_icc()
    src = tmp_path / "adobe.png"
    Image.fromarray(_MUTED).save(src, icc_profile=icc)
    photo = load_photo(src)
    assert np.abs(photo.rgb * 255 - _MUTED).max() > 5  # in sRGB the numbers differ
    out = save_photo(photo, tmp_path / "o", format=fmt, keep_source_profile=True)
    with Image.open(out) as img:
        assert img.info["icc_profile"] == icc
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    if fmt == "jpeg":  # lossy on a noisy pattern: judge the average
        assert np.abs(pixels - _MUTED).mean() < 3
    else:
        assert_close(pixels, _MUTED, 1.01, f"back in the source profile ({fmt})")


def test_keep_source_profile_16bit_float_path(tmp_path: Path) -> None:
    icc = make_rgb_icc()
    deep = _MUTED.astype(np.uint16) * 257 + 3
    src = tmp_path / "deep.png"
    src.write_bytes(png_16bit_bytes(deep))
    photo = photo_from_pil(Image.open(src), path=src)
    rgb, used = pio._icc_float_to_srgb(photo.rgb, icc)
    tagged = replace(photo, rgb=rgb, info=replace(photo.info, icc_profile=used))
    out = save_photo(tagged, tmp_path / "o.png", keep_source_profile=True)
    back = load_photo(out)
    assert back.info.icc_profile == icc and back.info.bit_depth == 16
    assert_close(back.rgb, rgb, 1 / 65535, "sRGB after the round trip")
    # The file holds the source-profile numbers again, at 16-bit precision.
    cv2 = pytest.importorskip("cv2")
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert_close(written, deep, 2, "16-bit pixels in the source profile")


def test_keep_grey_profile(tmp_path: Path) -> None:
    icc = make_grey_icc(1.8)
    grey = asymmetric_rgb()[..., 0]
    src = tmp_path / "g.png"
    Image.fromarray(grey).save(src, icc_profile=icc)
    out = save_photo(load_photo(src), tmp_path / "o.png", keep_source_profile=True)
    with Image.open(out) as img:
        assert img.mode == "L" and img.info["icc_profile"] == icc
        assert_close(np.asarray(img), grey, 1.01, "grey back through its profile")
    plain = save_photo(load_photo(src), tmp_path / "p.png")
    with Image.open(plain) as img:
        assert img.mode == "L" and "icc_profile" not in img.info  # an RGB profile cannot tag grey


# ------------------------------------------------------------------------------------------ atomic write


def test_parent_folders_created_and_no_temp_left(tmp_path: Path) -> None:
    out = save_photo(_photo(), tmp_path / "a" / "b" / "c.png")
    assert out.is_file()
    _no_temp_files(tmp_path)


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "photo.png"
    target.write_bytes(b"old contents")

    def half_write(f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pio, "_pil_save", half_write)
    with pytest.raises(ImageWriteError, match="No space left") as info:
        save_photo(_photo(), target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old contents"
    _no_temp_files(tmp_path)


def test_interrupt_during_write_cleans_up(tmp_path: Path, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pio, "_png16_writer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_photo(_photo(bit_depth=16), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_unwritable_destinations(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ImageWriteError, match="directory"):
        save_photo(_photo(), tmp_path / "taken.png")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ImageWriteError) as info:
        save_photo(_photo(), tmp_path / "file" / "sub" / "a.png")
    assert "a.png" in str(info.value)


def test_tiff16_writer_layout(tmp_path: Path) -> None:
    """The hand-written TIFF: little-endian header pointing at a word-aligned IFD with sorted tags."""
    out = save_photo(_photo(bit_depth=16, alpha=True), tmp_path / "t.tif", format="tiff")
    data = out.read_bytes()
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    assert ifd % 2 == 0
    count = struct.unpack_from("<H", data, ifd)[0]
    tags = [struct.unpack_from("<H", data, ifd + 2 + 12 * i)[0] for i in range(count)]
    assert tags == sorted(tags) and 338 in tags and 34675 in tags


def test_oversized_maker_note_dropped_rest_kept(tmp_path: Path) -> None:
    data = piexif.load(exif_bytes())
    data["Exif"][piexif.ExifIFD.MakerNote] = b"\x01" * 70_000  # more than a JPEG APP1 segment holds
    out = save_photo(_photo(exif=piexif.dump(data)), tmp_path / "m.jpg", format="jpeg")
    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[0x010F] == "PhotosrCam"
        assert 0x927C not in exif.get_ifd(0x8769)


def test_nan_and_out_of_range_pixels_saved_sanely(tmp_path: Path) -> None:
    rgb = np.array([[[np.nan, 2.0, -1.0]]], dtype=np.float32)
    out = save_photo(Photo(rgb=rgb), tmp_path / "n.png")
    with Image.open(out) as img:
        assert img.getpixel((0, 0)) == (0, 255, 0)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "tiff"])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)])
def test_tiny_photos(tmp_path: Path, fmt: str, size: tuple[int, int]) -> None:
    rgb = np.full((size[1], size[0], 3), 0.5, np.float32)
    info = SourceInfo(exif=exif_bytes(6), bit_depth=16 if fmt in ("png", "tiff") else 8)
    out = save_photo(Photo(rgb=rgb, info=info), tmp_path / "t", format=fmt)
    back = load_photo(out)
    assert back.size == size
    assert_close(back.rgb, 0.5, 0.02, f"{fmt} {size}")
