"""Conversion rules for images that are not uint8 RGB."""

import numpy as np
import pytest

import robustgen as rg
from robustgen.images import load_image, read_image, to_rgb_uint8, write_image


def test_gray_is_copied_to_three_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_rgb_uint8(gray)
    assert out.shape == (3, 4, 3) and (out == gray[:, :, None]).all()


def test_rgba_is_composited_over_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent becomes white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black becomes mid gray
    out = to_rgb_uint8(rgba)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert abs(int(out[1, 0, 0]) - 127) <= 1


def test_uint16_and_float_are_scaled():
    assert to_rgb_uint8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    assert to_rgb_uint8(np.full((2, 2, 3), 257 * 100, np.uint16))[0, 0, 0] == 100
    assert to_rgb_uint8(np.full((2, 2), 0.5, np.float32))[0, 0, 0] == 128
    assert to_rgb_uint8(np.full((2, 2), 7.0))[0, 0, 0] == 255  # floats are 0..1, clipped


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 2, 5), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.full((2, 2), 300, np.int32),
        np.full((2, 2), np.nan),
    ],
)
def test_unusable_arrays_get_a_clear_error(bad):
    with pytest.raises(rg.ImageError):
        to_rgb_uint8(bad)


def test_degrade_accepts_16_bit_gray_and_returns_uint8_rgb():
    img = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20
    out, _ = rg.degrade_image(img, "lens_blur", 0.5)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_files_round_trip_and_bad_files_name_themselves(tmp_path):
    img = load_image("skimage:coffee")
    write_image(tmp_path / "a.png", img)
    assert np.array_equal(read_image(tmp_path / "a.png"), img)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    for name, msg in [
        ("empty.png", "empty file"),
        ("junk.jpg", "not a readable image"),
        ("missing.png", "no such file"),
    ]:
        with pytest.raises(rg.ImageError, match=msg) as exc:
            read_image(tmp_path / name)
        assert name in str(exc.value)
    with pytest.raises(rg.ImageError, match="not one of the photos scikit-image ships"):
        load_image("skimage:nope")
