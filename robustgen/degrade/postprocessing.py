"""Post-processing: what editing apps, filters, overlays and re-sharing do to a photo."""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import Field

from robustgen.degrade import ops
from robustgen.degrade.base import Degrader, StrictParams
from robustgen.degrade.registry import register
from robustgen.schemas import Stage

POST = Stage.POSTPROCESSING
_WORDS = ("SALE", "LOL", "WOW", "OMG", "NEW", "HOT", "TOP", "YES", "NO", "VIRAL", "2024", "LIKE", "FOLLOW", "BEST")
_SMOOTH3 = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
_SMOOTH3_VAR = 6.0 / 13.0  # the variance of _SMOOTH3 along either axis, px^2
_MARKS = ("(c) STOCK", "SAMPLE", "PREVIEW", "DO NOT COPY", "WATERMARK")


def _text_scale(image: np.ndarray, height_frac: float) -> tuple[float, int]:
    """OpenCV font scale and thickness for text whose cap height is ``height_frac`` of the shorter side."""
    px = max(4.0, ops.frac_px(image, height_frac))
    return px / 22.0, max(1, int(round(px / 10.0)))


@register
class SharpnessChange(Degrader):
    name, label, stage = "sharpness_change", "sharpness change", POST
    visible_from = 0.56
    influence = "sharpness is pushed off its natural level: edges either turn soft or harsh with grainy detail"

    class Params(StrictParams):
        factor: float = Field(
            ge=-1, le=20, description="sharpness factor as in PIL ImageEnhance: 1 unchanged, < 1 softer, > 1 sharper"
        )

    def params_for(self, severity, rng):
        sharpen = bool(rng.random() < 0.5)
        factor = ops.lerp(1.0, 8.0, severity) if sharpen else ops.lerp(1.0, -1.0, severity)
        return self.Params(factor=round(factor, 4))

    def apply(self, image, params, rng):
        # blend with PIL's 3x3 smoothing kernel; below 0 the smoothed image is blurred further, by a Gaussian
        # of -factor * 0.4% of the shorter side, so softening keeps growing. The two are done as one Gaussian
        # whose variance is their sum (the kernel's is 6/13 per axis): one separable pass instead of two.
        if params.factor < 0:
            sigma = -params.factor * ops.frac_px(image, 0.004)
            return ops.gaussian_blur(image, math.sqrt(sigma * sigma + _SMOOTH3_VAR))
        kernel = _SMOOTH3 * np.float32(1.0 - params.factor)  # one pass: f * identity + (1 - f) * smooth
        kernel[1, 1] += np.float32(params.factor)
        return cv2.filter2D(image, -1, kernel, borderType=ops.BORDER)


@register
class Oversharpening(Degrader):
    name, label, stage = "oversharpening", "over-sharpening", POST
    influence = "heavy sharpening draws bright and dark halos around edges and turns noise into crunchy texture"

    class Params(StrictParams):
        amount: float = Field(ge=0, le=20, description="unsharp-mask amount")
        radius: float = Field(gt=0, le=0.1, description="halo width (Gaussian sigma), fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(
            amount=round(ops.lerp(0.4, 5.0, severity), 4), radius=round(ops.lerp(0.004, 0.012, severity), 5)
        )

    def apply(self, image, params, rng):
        blurred = ops.gaussian_blur(image, max(0.6, ops.frac_px(image, params.radius)))
        return cv2.addWeighted(image, 1.0 + params.amount, blurred, -params.amount, 0.0)


@register
class BeautySmoothing(Degrader):
    name, label, stage = "beauty_smoothing", "beauty smoothing", POST
    visible_from = 0.33
    influence = "a beauty filter irons out texture: skin, fabric and surfaces look plastic, small details vanish"

    class Params(StrictParams):
        strength: float = Field(ge=0, le=1, description="blend weight of the smoothed image")
        sigma_color: float = Field(gt=0, le=255, description="bilateral range sigma, DN")

    def params_for(self, severity, rng):
        return self.Params(
            strength=round(ops.lerp(0.3, 1.0, severity), 4), sigma_color=round(ops.lerp(15, 80, severity), 3)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 384)
        small = ops.resize(image, lw, lh, cv2.INTER_AREA)
        smooth = cv2.bilateralFilter(small, 7, params.sigma_color, 5)
        smooth = cv2.bilateralFilter(smooth, 7, params.sigma_color, 5)
        smooth = ops.resize(smooth, w, h, cv2.INTER_LINEAR)
        return cv2.addWeighted(image, 1.0 - params.strength, smooth, params.strength, 0.0)


@register
class Posterize(Degrader):
    name, label, stage = "posterize", "posterization", POST
    visible_from = 0.33
    influence = "tones collapse into a few flat steps: gradients band and shading detail disappears"

    class Params(StrictParams):
        bits: int = Field(ge=1, le=8, description="bits kept per channel")

    def params_for(self, severity, rng):
        return self.Params(bits=int(round(ops.lerp(6.0, 2.0, severity))))

    def apply(self, image, params, rng):
        if params.bits >= 8:
            return image.copy()
        return ops.lut(image, np.arange(256) & ~((1 << (8 - params.bits)) - 1))  # keep the top ``bits`` bits


@register
class ColorGrading(Degrader):
    name, label, stage = "color_grading", "color grading", POST
    influence = "a heavy stylised grade tints shadows and highlights and bends contrast, so colours are not true"

    class Params(StrictParams):
        strength: float = Field(ge=0, le=1, description="how far the grade moves colours")
        shadow_hue: float = Field(ge=0, lt=360, description="hue pushed into the shadows, degrees")
        highlight_hue: float = Field(ge=0, lt=360, description="hue pushed into the highlights, degrees")

    def params_for(self, severity, rng):
        sh = float(rng.uniform(0, 360))
        hh = (sh + float(rng.uniform(120, 240))) % 360
        return self.Params(
            strength=round(ops.lerp(0.1, 1.0, severity), 4), shadow_hue=round(sh, 2), highlight_hue=round(hh, 2)
        )

    def apply(self, image, params, rng):
        x = np.arange(256, dtype=np.float64) / 255.0
        s = params.strength
        curve = x + s * 0.35 * (x - 0.5) * (1 - np.abs(2 * x - 1))  # S-curve: more contrast in the mids
        table = np.repeat(curve[:, None], 3, axis=1)
        for hue, weight in ((params.shadow_hue, (1 - x) ** 2), (params.highlight_hue, x**2)):
            rgb = cv2.cvtColor(np.uint8([[[hue / 2.0, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
            table += s * 0.35 * weight[:, None] * (rgb[None, :] - 0.5)
        return ops.lut(image, 255.0 * np.clip(table, 0, 1))


@register
class Recompression(Degrader):
    name, label, stage = "recompression", "re-compression", POST
    visible_from = 0.11
    influence = "re-shared many times: each generation rescales and re-encodes, stacking blur and block artefacts"

    class Params(StrictParams):
        generations: int = Field(ge=1, le=20, description="number of rescale + JPEG passes")
        quality: int = Field(ge=1, le=100, description="JPEG quality of each pass")
        scale: float = Field(gt=0, le=1, description="rescale factor per pass (image restored to its size at the end)")

    def params_for(self, severity, rng):
        return self.Params(
            generations=int(round(ops.lerp(2, 6, severity))),
            quality=int(round(ops.lerp(85, 25, severity))),
            scale=round(ops.lerp(0.95, 0.7, severity), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        out = image
        for g in range(params.generations):
            f = params.scale if g % 2 == 0 else 1.0 / params.scale  # shrink, then grow back
            out = ops.resize(
                out, round(out.shape[1] * f), round(out.shape[0] * f), cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
            )
            out = ops.jpeg_roundtrip(out, params.quality)
        return ops.resize(out, w, h, cv2.INTER_LINEAR) if out.shape[:2] != (h, w) else out


@register
class Moire(Degrader):
    name, label, stage = "moire", "moire", POST
    visible_from = 0.11
    influence = "a photo of a screen: rainbow interference bands and a faint pixel grid ripple across the image"

    class Params(StrictParams):
        amplitude: float = Field(ge=0, le=1, description="band contrast, fraction of full scale")
        frequency: float = Field(gt=0, le=200, description="band cycles across the shorter side")
        angle_deg: float = Field(ge=-360, le=360, description="band orientation, degrees")

    def params_for(self, severity, rng):
        return self.Params(
            amplitude=round(ops.lerp(0.04, 0.4, severity), 4),
            frequency=round(float(rng.uniform(8, 30)), 3),
            angle_deg=round(float(rng.uniform(0, 180)), 2),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 512)
        short = min(lh, lw)
        yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
        a = math.radians(params.angle_deg)
        u = (xx * math.cos(a) + yy * math.sin(a)) / short
        v = (xx * math.cos(a + 0.3) + yy * math.sin(a + 0.3)) / short
        phase = np.float32(2 * math.pi * params.frequency) * (u + 0.15 * np.sin(np.float32(6.0) * v))
        bands = np.stack([np.sin(phase + off) for off in (0.0, 2.1, 4.2)], axis=2)  # rainbow: per-channel phase
        gain = 1.0 + np.float32(params.amplitude) * bands
        gain = cv2.resize(gain.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.to_uint8(image.astype(np.float32) * gain.reshape(h, w, 3))


def _draw_text(canvas: np.ndarray, text: str, org: tuple[int, int], scale: float, thick: int, color, outline) -> None:
    if outline is not None:
        cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_DUPLEX, scale, outline, thick + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_DUPLEX, scale, color, thick, cv2.LINE_AA)


@register
class Graffiti(Degrader):
    name, label, stage = "graffiti", "graffiti", POST
    visible_from = 0.22
    influence = "thick painted scribbles are drawn over the image, covering parts of objects and text"

    class Params(StrictParams):
        strokes: int = Field(ge=0, le=100, description="number of painted strokes")
        width: float = Field(gt=0, le=0.2, description="stroke width, fraction of the shorter side")
        opacity: float = Field(ge=0, le=1, description="paint opacity")

    def params_for(self, severity, rng):
        return self.Params(
            strokes=int(round(ops.lerp(1, 10, severity))),
            width=round(ops.lerp(0.01, 0.03, severity), 4),
            opacity=round(ops.lerp(0.6, 0.95, severity), 3),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        max_strokes = 10
        starts = rng.uniform(0, 1, (max_strokes, 2)) * [w, h]
        steps = rng.normal(0, 0.12, (max_strokes, 6, 2)) * [w, h]
        colors = rng.integers(0, 256, (max_strokes, 3))
        layer, mask = image.copy(), np.zeros((h, w), np.uint8)
        thick = max(1, int(round(ops.frac_px(image, params.width))))
        for i in range(min(params.strokes, max_strokes)):
            pts = (starts[i] + np.cumsum(steps[i], axis=0)).astype(np.int32)
            pts = np.vstack([starts[i].astype(np.int32)[None], pts])
            color = tuple(int(c) for c in colors[i])
            cv2.polylines(layer, [pts], False, color, thick, cv2.LINE_AA)
            cv2.polylines(mask, [pts], False, 255, thick, cv2.LINE_AA)
        return ops.blend(image, layer, mask.astype(np.float32) * np.float32(params.opacity / 255.0))


@register
class WatermarkDamage(Degrader):
    name, label, stage = "watermark_damage", "watermark damage", POST
    visible_from = 0.11
    influence = "a tiled semi-transparent watermark lies over everything, obscuring fine detail and text"

    class Params(StrictParams):
        opacity: float = Field(ge=0, le=1, description="watermark opacity")
        text_size: float = Field(gt=0, le=0.5, description="letter height, fraction of the shorter side")
        angle_deg: float = Field(ge=-180, le=180, description="tile rotation, degrees")
        text: str = Field(min_length=1, max_length=200, description="watermark text")

    def params_for(self, severity, rng):
        text = _MARKS[int(rng.integers(0, len(_MARKS)))]
        angle = float(rng.uniform(-40, 40))
        return self.Params(
            opacity=round(ops.lerp(0.12, 0.65, severity), 4), text_size=0.06, angle_deg=round(angle, 2), text=text
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        side = int(math.ceil(math.hypot(h, w)))
        layer = np.zeros((side, side), np.uint8)
        scale, thick = _text_scale(image, params.text_size)
        (tw, th), _ = cv2.getTextSize(params.text, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
        step_x, step_y = tw + th * 2, th * 4
        for row, y in enumerate(range(th, side + th, max(1, step_y))):
            for x in range(-(row % 2) * step_x // 2, side, max(1, step_x)):
                cv2.putText(layer, params.text, (x, y), cv2.FONT_HERSHEY_DUPLEX, scale, 255, thick, cv2.LINE_AA)
        m = cv2.getRotationMatrix2D((side / 2, side / 2), params.angle_deg, 1.0)
        m[:, 2] -= [(side - w) / 2, (side - h) / 2]
        mark = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR)
        return ops.blend(
            image, ops.solid(image, (245, 245, 245)), mark.astype(np.float32) * np.float32(params.opacity / 255.0)
        )


@register
class TextOverlay(Degrader):
    name, label, stage = "text_overlay", "text overlay", POST
    visible_from = 0.22
    influence = "captions and meme text are stamped on the image, covering whatever lies beneath them"

    class Params(StrictParams):
        words: int = Field(ge=0, le=100, description="number of words stamped")
        text_size: float = Field(gt=0, le=0.5, description="letter height, fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(
            words=int(round(ops.lerp(1, 8, severity))), text_size=round(ops.lerp(0.05, 0.11, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n_max = 8
        picks = rng.integers(0, len(_WORDS), n_max)
        pos = rng.uniform(0.0, 1.0, (n_max, 2))
        colors = rng.integers(0, 2, n_max)
        out = image.copy()
        scale, thick = _text_scale(image, params.text_size)
        for i in range(min(params.words, n_max)):
            word = _WORDS[int(picks[i])]
            (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
            x = int(pos[i, 0] * max(1, w - tw))
            y = int(th + pos[i, 1] * max(1, h - th))
            fill, edge = ((255, 255, 255), (0, 0, 0)) if colors[i] else ((255, 230, 0), (0, 0, 0))
            _draw_text(out, word, (x, y), scale, thick, fill, edge)
        return out


@register
class StickerOverlay(Degrader):
    name, label, stage = "sticker_overlay", "sticker overlay", POST
    influence = "emoji-like stickers are pasted on top, hiding the objects under them"

    class Params(StrictParams):
        count: int = Field(ge=0, le=100, description="number of stickers")
        size: float = Field(gt=0, le=0.5, description="sticker radius, fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(count=int(round(ops.lerp(1, 6, severity))), size=round(ops.lerp(0.05, 0.12, severity), 4))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n_max = 6
        pos = rng.uniform(0.05, 0.95, (n_max, 2)) * [w, h]
        hues = rng.choice([25, 15, 100, 160, 0], n_max)
        out = image.copy()
        r = max(2, int(round(ops.frac_px(image, params.size))))
        for i in range(min(params.count, n_max)):
            cx, cy = int(pos[i, 0]), int(pos[i, 1])
            face = tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hues[i], 230, 255]]]), cv2.COLOR_HSV2RGB)[0, 0])
            cv2.circle(out, (cx, cy), r, (30, 30, 30), max(1, r // 10) + 1, cv2.LINE_AA)
            cv2.circle(out, (cx, cy), r, face, -1, cv2.LINE_AA)
            eye = max(1, r // 7)
            for ex in (-r // 3, r // 3):
                cv2.circle(out, (cx + ex, cy - r // 4), eye, (30, 30, 30), -1, cv2.LINE_AA)
            cv2.ellipse(
                out, (cx, cy + r // 8), (r // 2, r // 3), 0, 20, 160, (30, 30, 30), max(1, r // 10), cv2.LINE_AA
            )
        return out


@register
class Halftone(Degrader):
    name, label, stage = "halftone", "halftone print", POST
    influence = "printed and scanned: tones become dot patterns, fine detail and thin text break into dots"

    class Params(StrictParams):
        cell: float = Field(gt=0, le=0.1, description="dot spacing, fraction of the shorter side")
        angle_deg: float = Field(ge=0, lt=90, description="screen angle, degrees")
        amount: float = Field(ge=0, le=1, description="mix of the printed dots with the picture")

    def params_for(self, severity, rng):
        angle = float(rng.uniform(0.0, 90.0))
        return self.Params(
            cell=round(ops.lerp(0.004, 0.02, severity), 6),
            angle_deg=round(angle, 3) % 90.0,  # a square screen at 90 degrees is the one at 0 (bound: < 90)
            amount=round(ops.lerp(0.3, 1.0, severity), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        period = max(2.0, ops.frac_px(image, params.cell))
        a = math.radians(params.angle_deg)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period)
        v = (-xs * math.sin(a) + ys * math.cos(a)) * (2 * math.pi / period)
        screen = (0.5 + 0.25 * (np.cos(u) + np.cos(v)))[:, :, None]  # 0..1 threshold per pixel
        dots = np.where(image.astype(np.float32) / 255.0 > screen, 255.0, 0.0).astype(np.float32)
        dots = cv2.GaussianBlur(dots, (0, 0), 0.6)  # the scanner's softness
        out = image.astype(np.float32) * (1.0 - params.amount) + dots * params.amount
        return ops.to_uint8(out)


@register
class Shear(Degrader):
    name, label, stage = "shear", "shear", POST
    geometric = True
    influence = "the picture is slanted sideways: verticals lean, rectangles become parallelograms, text is italicised"

    class Params(StrictParams):
        shear: float = Field(
            ge=-1, le=1, description="horizontal shift per row, fraction of the row's distance from the centre"
        )

    def params_for(self, severity, rng):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return self.Params(shear=round(sign * ops.lerp(0.01, 0.3, severity), 5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        if min(h, w) < 4:
            return image.copy()
        s = params.shear
        scale = 1.0 + abs(s) * h / w  # zoom so the slanted frame still covers the output
        m = np.float32([[scale, s * scale, 0.0], [0.0, scale, 0.0]])
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        m[0, 2] = cx - (m[0, 0] * cx + m[0, 1] * cy)
        m[1, 2] = cy - m[1, 1] * cy
        return ops.warp_affine(image, m)
