"""Transmission: what encoding, resizing and unreliable links do to a finished image."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from robustgen.degrade import ops
from robustgen.degrade.base import Degrader, StrictParams
from robustgen.degrade.registry import register
from robustgen.schemas import Stage

TRN = Stage.TRANSMISSION


@register
class Compression(Degrader):
    name, label, stage = "compression", "compression", TRN
    visible_from = 0.67
    influence = "JPEG compression adds 8x8 blocking, ringing around edges and colour smearing; fine texture is lost"

    class Params(StrictParams):
        quality: int = Field(ge=1, le=100, description="JPEG quality (OpenCV/libjpeg scale)")

    def params_for(self, severity, rng):
        return self.Params(quality=int(round(ops.lerp(80, 5, severity))))

    def apply(self, image, params, rng):
        return ops.jpeg_roundtrip(image, params.quality)


@register
class WebpCompression(Degrader):
    name, label, stage = "webp_compression", "webp compression", TRN
    visible_from = 0.33
    influence = "WebP compression smooths textures into flat patches and blurs small details and text"

    class Params(StrictParams):
        quality: int = Field(ge=1, le=100, description="WebP quality (libwebp scale)")
        method: int = Field(ge=0, le=6, description="libwebp effort (0 fastest .. 6 slowest)")

    def params_for(self, severity, rng):
        return self.Params(quality=int(round(ops.lerp(80, 1, severity))), method=0)

    def apply(self, image, params, rng):
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="WEBP", quality=params.quality, method=params.method)
        buf.seek(0)
        with Image.open(buf) as decoded:
            return np.asarray(decoded.convert("RGB"))


@register
class BlockChange(Degrader):
    name, label, stage = "block_change", "block change", TRN
    geometric = True
    influence = "rectangular blocks are replaced by copies from elsewhere or flat colour, breaking objects apart"

    class Params(StrictParams):
        block: float = Field(gt=0, le=1, description="block edge, fraction of the shorter side")
        fraction: float = Field(ge=0, le=1, description="share of blocks that are changed")

    def params_for(self, severity, rng):
        return self.Params(block=0.0625, fraction=round(ops.lerp(0.02, 0.35, severity), 4))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        b = max(1, int(round(ops.frac_px(image, params.block))))
        gy, gx = -(-h // b), -(-w // b)
        score = rng.random((gy, gx))
        action = rng.integers(0, 3, (gy, gx))
        src_y, src_x = rng.integers(0, gy, (gy, gx)), rng.integers(0, gx, (gy, gx))
        out = image.copy()
        for by, bx in zip(*np.nonzero(score < params.fraction), strict=True):
            y0, x0 = by * b, bx * b
            tile = out[y0 : y0 + b, x0 : x0 + b]
            if action[by, bx] == 0:  # flat block of its own mean colour
                tile[:] = image[y0 : y0 + b, x0 : x0 + b].reshape(-1, 3).mean(0).astype(np.uint8)
            else:  # a copy from another block (action 2 also swaps R and B, as in a bad decode)
                sy, sx = src_y[by, bx] * b, src_x[by, bx] * b
                src = image[sy : sy + b, sx : sx + b]
                th, tw = min(tile.shape[0], src.shape[0]), min(tile.shape[1], src.shape[1])
                tile[:th, :tw] = src[:th, :tw, ::-1] if action[by, bx] == 2 else src[:th, :tw]
        return out


@register
class Shifting(Degrader):
    name, label, stage = "shifting", "shifting", TRN
    geometric = True
    influence = "horizontal bands slide sideways, so objects are torn into misaligned strips"

    class Params(StrictParams):
        max_shift: float = Field(ge=0, le=1, description="largest band displacement, fraction of width")
        fraction: float = Field(ge=0, le=1, description="share of bands that are displaced")

    def params_for(self, severity, rng):
        return self.Params(
            max_shift=round(ops.lerp(0.01, 0.2, severity), 4), fraction=round(ops.lerp(0.1, 0.6, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n_bands = 24
        cuts = np.sort(rng.integers(0, h + 1, n_bands - 1))
        edges = np.concatenate([[0], cuts, [h]])
        score, direction = rng.random(n_bands), rng.uniform(-1.0, 1.0, n_bands)
        out = image.copy()
        for i in range(n_bands):
            y0, y1 = int(edges[i]), int(edges[i + 1])
            if y1 > y0 and score[i] < params.fraction:
                dx = int(round(direction[i] * params.max_shift * w))
                out[y0:y1] = np.roll(image[y0:y1], dx, axis=1)
        return out


@register
class ScanLines(Degrader):
    name, label, stage = "scan_lines", "scan lines", TRN
    influence = "dark horizontal lines stripe the image, cutting through thin details and lowering brightness"

    class Params(StrictParams):
        period: float = Field(gt=0, le=1, description="line spacing, fraction of the shorter side (>= 2 px)")
        darkness: float = Field(ge=0, le=1, description="light removed on a line, fraction")
        jitter: float = Field(ge=0, le=1, description="random brightness flicker per line, fraction")

    def params_for(self, severity, rng):
        return self.Params(
            period=0.008,
            darkness=round(ops.lerp(0.04, 0.8, severity), 4),
            jitter=round(ops.lerp(0.0, 0.15, severity), 4),
        )

    def apply(self, image, params, rng):
        h = image.shape[0]
        period = max(2, int(round(ops.frac_px(image, params.period))))
        rows = np.arange(h)
        on_line = (rows % period) < max(1, period // 2)
        gain = np.where(on_line, 1.0 - params.darkness, 1.0) * (1.0 - params.jitter * rng.random(h))
        gain = np.clip(gain, 0, 1).astype(np.float32)[:, None, None]
        return ops.to_uint8(image.astype(np.float32) * gain)


@register
class Pixelate(Degrader):
    name, label, stage = "pixelate", "pixelation", TRN
    influence = "the image is made of large flat squares; shapes remain but edges and small objects vanish"

    class Params(StrictParams):
        cell: float = Field(gt=0, le=1, description="pixel cell edge, fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(cell=round(ops.lerp(0.002, 0.05, severity), 5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        c = max(1.0, ops.frac_px(image, params.cell))
        small = ops.resize(image, round(w / c), round(h / c), cv2.INTER_AREA)
        return ops.resize(small, w, h, cv2.INTER_NEAREST)


@register
class Downscale(Degrader):
    name, label, stage = "downscale", "resolution loss", TRN
    influence = "a low-resolution copy is upscaled back: everything is soft and small text or faces lose detail"

    class Params(StrictParams):
        factor: float = Field(ge=1, le=100, description="downscale factor before upscaling back")
        upsample: Literal["linear", "cubic"] = Field(description="interpolation used to upscale back")

    def params_for(self, severity, rng):
        up = "cubic" if rng.random() < 0.5 else "linear"
        return self.Params(factor=round(ops.lerp(1.25, 10.0, severity), 4), upsample=up)

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        if min(h, w) / params.factor >= 1:  # the exact factor as the scale: each output pixel averages factor^2
            k = 1.0 / params.factor
            small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        else:
            small = ops.resize(image, round(w / params.factor), round(h / params.factor), cv2.INTER_AREA)
        interp = cv2.INTER_CUBIC if params.upsample == "cubic" else cv2.INTER_LINEAR
        return ops.resize(small, w, h, interp)


@register
class Interlacing(Degrader):
    name, label, stage = "interlacing", "interlacing", TRN
    geometric = True
    influence = "alternate rows come from shifted fields, giving comb-like jagged edges on every contour"

    class Params(StrictParams):
        shift: float = Field(ge=-1, le=1, description="horizontal offset of the odd field, fraction of width")

    def params_for(self, severity, rng):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return self.Params(shift=round(sign * ops.lerp(0.002, 0.04, severity), 5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        dx = params.shift * w
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        moved = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out = image.copy()
        out[1::2] = moved[1::2]
        return out


@register
class PacketLoss(Degrader):
    name, label, stage = "packet_loss", "packet loss", TRN
    visible_from = 0.11
    influence = "whole horizontal slices are lost and filled by smeared copies of the row above or gray"

    class Params(StrictParams):
        slice_height: float = Field(gt=0, le=1, description="height of one slice, fraction of the shorter side")
        fraction: float = Field(ge=0, le=1, description="share of slices that are lost")

    def params_for(self, severity, rng):
        return self.Params(slice_height=0.03, fraction=round(ops.lerp(0.02, 0.4, severity), 4))

    def apply(self, image, params, rng):
        h = image.shape[0]
        sh = max(1, int(round(ops.frac_px(image, params.slice_height))))
        n = -(-h // sh)
        score, gray = rng.random(n), rng.random(n) < 0.3
        out = image.copy()
        for i in np.nonzero(score < params.fraction)[0]:
            y0, y1 = i * sh, min(h, (i + 1) * sh)
            if gray[i] or y0 == 0:
                out[y0:y1] = 128
            else:  # conceal with the last good row, as a decoder does
                out[y0:y1] = out[y0 - 1]
        return out


@register
class BitErrors(Degrader):
    name, label, stage = "bit_errors", "bit errors", TRN
    visible_from = 0.22
    influence = "random bit flips scatter bright and dark coloured specks across the image"

    class Params(StrictParams):
        rate: float = Field(ge=0, le=1, description="fraction of pixel bytes with one flipped bit")

    def params_for(self, severity, rng):
        return self.Params(rate=round(ops.lerp(0.0005, 0.06, severity), 6))

    def apply(self, image, params, rng):
        flat = image.copy().reshape(-1)
        n = int(round(params.rate * flat.size))
        where = rng.integers(0, flat.size, n)
        bits = rng.integers(3, 8, n).astype(np.uint8)  # low bits are invisible; flip the visible ones
        np.bitwise_xor.at(flat, where, np.left_shift(np.uint8(1), bits))
        return flat.reshape(image.shape)


@register
class ColorQuantization(Degrader):
    name, label, stage = "color_quantization", "color quantization", TRN
    visible_from = 0.33
    influence = "the palette shrinks to a few colours with dither noise: gradients band and subtle colours merge"

    class Params(StrictParams):
        colors: int = Field(ge=2, le=256, description="palette size")
        dither: bool = Field(description="Floyd-Steinberg dithering")

    def params_for(self, severity, rng):
        dither = bool(rng.random() < 0.5)
        return self.Params(colors=int(round(2 ** ops.lerp(7.0, 2.0, severity))), dither=dither)

    def apply(self, image, params, rng):
        from PIL import Image

        pil = Image.fromarray(image)
        dither = Image.Dither.FLOYDSTEINBERG if params.dither else Image.Dither.NONE
        q = pil.quantize(colors=params.colors, method=Image.Quantize.FASTOCTREE, dither=dither)
        return np.asarray(q.convert("RGB"))


@register
class Ringing(Degrader):
    name, label, stage = "ringing", "ringing", TRN
    visible_from = 0.67
    influence = "band-limiting leaves echoes (halos and ripples) beside every strong edge"

    class Params(StrictParams):
        cutoff: float = Field(gt=0, le=1, description="sinc cutoff as a fraction of Nyquist (lower = stronger)")
        taps: int = Field(ge=3, le=101, description="odd 1-D filter length in pixels (applied separably)")

    def params_for(self, severity, rng):
        return self.Params(cutoff=round(ops.lerp(0.8, 0.15, severity), 4), taps=21)

    def apply(self, image, params, rng):
        n = params.taps | 1
        x = np.arange(n, dtype=np.float64) - n // 2
        k = np.sinc(params.cutoff * x)  # rectangular window: keeps the Gibbs ripples
        k = (k / k.sum()).astype(np.float32)
        return cv2.sepFilter2D(image, -1, k, k, borderType=ops.BORDER)


@register
class ChromaSubsampling(Degrader):
    name, label, stage = "chroma_subsampling", "chroma subsampling", TRN
    visible_from = 0.5
    influence = "colour is stored at low resolution: colours bleed across edges and small coloured details blur"

    class Params(StrictParams):
        factor: int = Field(ge=1, le=64, description="chroma downsampling factor per axis")

    def params_for(self, severity, rng):
        return self.Params(factor=2 ** round(ops.lerp(1.0, 5.0, severity)))  # a power of two: block-aligned

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        chroma = ycc[:, :, 1:]
        small = ops.resize(chroma, round(w / params.factor), round(h / params.factor), cv2.INTER_AREA)
        if small.ndim == 2:
            small = small[:, :, None]
        up = ops.resize(small, w, h, cv2.INTER_NEAREST)
        ycc = np.dstack([ycc[:, :, 0], up.reshape(h, w, 2)])
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


@register
class ImpulseNoise(Degrader):
    name, label, stage = "impulse_noise", "impulse noise", TRN
    influence = "isolated black and white dots (salt and pepper) pepper the image, breaking up fine detail"

    class Params(StrictParams):
        amount: float = Field(ge=0, le=1, description="fraction of pixels hit")
        salt: float = Field(ge=0, le=1, description="share of hits that turn white (the rest turn black)")

    def params_for(self, severity, rng):
        return self.Params(
            amount=round(ops.lerp(0.0005, 0.1, severity), 5), salt=round(float(rng.uniform(0.4, 0.6)), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        u = np.frombuffer(rng.bytes(2 * h * w), dtype="<u2").reshape(h, w)
        salt_below = int(round(params.amount * params.salt * 65536))
        pepper_below = int(round(params.amount * 65536))
        out = image.copy()
        out[u < salt_below] = 255
        out[(u >= salt_below) & (u < pepper_below)] = 0
        return out


@register
class Upsampling(Degrader):
    name, label, stage = "upsampling", "upsampling artefacts", TRN
    visible_from = 0.11
    influence = "a small picture was blown up: blocky or jagged edges, aliasing and moire on fine patterns, soft detail"

    class Params(StrictParams):
        factor: float = Field(ge=1, le=16, description="downsampling factor (no anti-aliasing) before upscaling back")
        method: Literal["nearest", "linear", "cubic"] = Field(description="interpolation used to upscale back")

    _FLAGS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}

    def params_for(self, severity, rng):
        method = ("nearest", "linear", "cubic")[int(rng.integers(0, 3))]
        return self.Params(factor=round(ops.lerp(1.25, 4.0, severity), 4), method=method)

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        sh, sw = max(1, round(h / params.factor)), max(1, round(w / params.factor))
        if (sh, sw) == (h, w):
            return image.copy()
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR)  # no low-pass first: aliasing kept
        return cv2.resize(small, (w, h), interpolation=self._FLAGS[params.method])


@register
class Ghosting(Degrader):
    name, label, stage = "ghosting", "ghosting", TRN
    visible_from = 0.22
    influence = "a faint shifted copy of the picture overlays it (signal echo): edges double, text gets a shadow twin"

    class Params(StrictParams):
        offset: float = Field(ge=0, le=0.2, description="shift of the echo to the right, fraction of the width")
        amount: float = Field(ge=0, le=0.6, description="strength of the echo")

    def params_for(self, severity, rng):
        return self.Params(
            offset=round(ops.lerp(0.005, 0.04, severity), 6), amount=round(ops.lerp(0.1, 0.45, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        dx = ops.frac_px(image, params.offset) * w / max(1, ops.short_side(image))
        echo = ops.warp_affine(image, np.float32([[1, 0, dx], [0, 1, 0]]))
        return cv2.addWeighted(image, 1.0 - params.amount, echo, params.amount, 0.0)


@register
class AspectSqueeze(Degrader):
    name, label, stage = "aspect_squeeze", "aspect ratio distortion", TRN
    geometric = True
    influence = "shown with the wrong aspect ratio: everything is stretched one way, circles become ovals"

    class Params(StrictParams):
        factor: float = Field(ge=1, le=3, description="stretch along the axis (the centre is kept, the rest cropped)")
        vertical: bool = Field(description="stretch vertically (else horizontally)")

    def params_for(self, severity, rng):
        return self.Params(factor=round(ops.lerp(1.05, 1.8, severity), 4), vertical=bool(rng.random() < 0.5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        if min(h, w) < 4:
            return image.copy()
        fx, fy = (1.0, params.factor) if params.vertical else (params.factor, 1.0)
        m = np.float32([[fx, 0, (1 - fx) * (w - 1) / 2.0], [0, fy, (1 - fy) * (h - 1) / 2.0]])
        return ops.warp_affine(image, m)
