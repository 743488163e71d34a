"""Acquisition: what the lens and the sensor do to light before a file exists."""

from __future__ import annotations

import math

import albumentations.augmentations.pixel.functional as AF
import cv2
import numpy as np
from pydantic import Field

from robustgen.degrade import ops
from robustgen.degrade.base import Degrader, StrictParams
from robustgen.degrade.registry import register
from robustgen.schemas import Stage

ACQ = Stage.ACQUISITION


@register
class LensBlur(Degrader):
    name, label, stage = "lens_blur", "lens blur", ACQ
    influence = "softens edges and fine texture; small text, thin lines and distant details become hard to make out"

    class Params(StrictParams):
        sigma: float = Field(gt=0, le=0.25, description="Gaussian sigma, fraction of the shorter image side")

    def params_for(self, severity, rng):
        return self.Params(sigma=round(ops.lerp(0.001, 0.016, severity), 6))

    def apply(self, image, params, rng):
        return ops.gaussian_blur(image, ops.frac_px(image, params.sigma))


@register
class DefocusBlur(Degrader):
    name, label, stage = "defocus_blur", "defocus blur", ACQ
    influence = "spreads every point into a disk: shapes stay but edges, text and texture dissolve into soft blobs"

    class Params(StrictParams):
        radius: float = Field(gt=0, le=0.25, description="disk radius, fraction of the shorter image side")

    def params_for(self, severity, rng):
        return self.Params(radius=round(ops.lerp(0.002, 0.022, severity), 6))

    def apply(self, image, params, rng):
        return ops.disk_blur(image, ops.frac_px(image, params.radius))


@register
class MotionBlur(Degrader):
    name, label, stage = "motion_blur", "motion blur", ACQ
    influence = "smears the scene along one direction; edges across the motion streak and text becomes illegible"

    class Params(StrictParams):
        length: float = Field(gt=0, le=0.25, description="blur path length, fraction of the shorter image side")
        angle_deg: float = Field(ge=0, lt=180, description="direction of motion, degrees counter-clockwise")

    def params_for(self, severity, rng):
        angle = round(float(rng.uniform(0.0, 180.0)), 3) % 180.0  # a draw that rounds to 180 is 0 (bound: < 180)
        return self.Params(length=round(ops.lerp(0.004, 0.06, severity), 6), angle_deg=angle)

    def apply(self, image, params, rng):
        return ops.directional_blur(image, ops.frac_px(image, params.length), params.angle_deg)


@register
class LensFlare(Degrader):
    name, label, stage = "lens_flare", "lens flare", ACQ
    visible_from = 0.22
    influence = "adds a bright glare with ghost circles along a line; regions near the light wash out and lose contrast"

    class Params(StrictParams):
        x: float = Field(ge=0, le=1, description="light source x, fraction of width")
        y: float = Field(ge=0, le=1, description="light source y, fraction of height")
        intensity: float = Field(ge=0, le=1, description="peak added light, fraction of full scale")
        radius: float = Field(gt=0, le=1, description="glow radius, fraction of the shorter side")
        hue: float = Field(ge=0, lt=180, description="ghost tint hue (OpenCV 0..180)")

    def params_for(self, severity, rng):
        x, y, hue = rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.45), rng.uniform(0, 180)
        return self.Params(
            x=round(float(x), 4),
            y=round(float(y), 4),
            hue=round(float(hue), 2),
            intensity=round(ops.lerp(0.25, 0.95, severity), 4),
            radius=round(ops.lerp(0.08, 0.35, severity), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 192)
        sx, sy = params.x * lw, params.y * lh
        r = params.radius * min(lh, lw)
        d = ops.radial_distance(lh, lw, sx, sy) * np.float32(0.5 * math.hypot(lh, lw))
        light = np.exp(-(d * d) / np.float32(2 * r * r)) * np.float32(params.intensity)
        tint = cv2.cvtColor(np.uint8([[[params.hue, 160, 255]]]), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
        layer = np.repeat(light[:, :, None], 3, axis=2)
        cx, cy = lw / 2.0, lh / 2.0
        for i, t in enumerate((0.6, 1.2, 1.7, 2.3)):  # ghosts on the line through the centre
            gx, gy = sx + (cx - sx) * t, sy + (cy - sy) * t
            gr = r * (0.18 + 0.12 * (i % 2))
            gd = ops.radial_distance(lh, lw, gx, gy) * np.float32(0.5 * math.hypot(lh, lw))
            ghost = np.clip(1.0 - gd / np.float32(gr), 0.0, 1.0) * np.float32(0.35 * params.intensity)
            layer += ghost[:, :, None] * tint.astype(np.float32)[None, None, :]
        layer = cv2.resize(np.clip(layer * 255.0, 0, 255), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.screen(image, ops.to_uint8(layer))


@register
class DirtyLens(Degrader):
    name, label, stage = "dirty_lens", "dirty lens", ACQ
    visible_from = 0.78
    influence = "smudges and dust spots veil parts of the image with hazy, low-contrast blotches"

    class Params(StrictParams):
        opacity: float = Field(ge=0, le=1, description="peak veil opacity of a smudge")
        spot_size: float = Field(gt=0, le=0.5, description="smudge radius scale, fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(
            opacity=round(ops.lerp(0.12, 0.75, severity), 4), spot_size=round(ops.lerp(0.03, 0.12, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 160)
        mask = np.zeros((lh, lw), np.float32)
        n = 14
        xs, ys = rng.uniform(0, lw, n), rng.uniform(0, lh, n)
        sizes, weights = rng.uniform(0.5, 1.5, n), rng.uniform(0.4, 1.0, n)
        base = params.spot_size * min(lh, lw)
        for x, y, s, wt in zip(xs, ys, sizes, weights, strict=True):
            r = max(1, int(round(base * s)))
            cv2.circle(mask, (int(x), int(y)), r, float(wt), -1, lineType=cv2.LINE_AA)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, base * 0.6))
        mask = np.clip(mask, 0, 1) * np.float32(params.opacity)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        small = ops.resize(image, lw, lh, cv2.INTER_AREA)
        small = ops.gaussian_blur(small, base * 0.3)
        veil = cv2.addWeighted(small, 0.55, ops.solid(small, (200, 190, 170)), 0.45, 0)
        veil = cv2.resize(veil, (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, veil, mask)


@register
class Saturation(Degrader):
    name, label, stage = "saturation", "saturation", ACQ
    visible_from = 0.33
    influence = (
        "pushes colour saturation far from natural: colours bleed to neon or fade towards gray, hiding colour cues"
    )

    class Params(StrictParams):
        factor: float = Field(ge=0, le=10, description="saturation multiplier: 1 unchanged, >1 boosted, <1 faded")

    def params_for(self, severity, rng):
        boost = bool(rng.random() < 0.5)
        f = ops.lerp(1.0, 4.0, severity) if boost else ops.lerp(1.0, 0.05, severity)
        return self.Params(factor=round(f, 4))

    def apply(self, image, params, rng):
        gray = cv2.cvtColor(ops.luma(image), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(image, params.factor, gray, 1.0 - params.factor, 0.0)


@register
class ChromaticAberration(Degrader):
    name, label, stage = "chromatic_aberration", "chromatic aberration", ACQ
    visible_from = 0.22
    geometric = True
    influence = "red and blue channels drift apart towards the borders, giving coloured fringes on edges"

    class Params(StrictParams):
        distortion: float = Field(
            ge=0, le=0.5, description="red vs blue magnification difference (0.04 = red 1% larger, blue 1% smaller)"
        )

    def params_for(self, severity, rng):
        return self.Params(distortion=round(ops.lerp(0.005, 0.12, severity), 5))

    def apply(self, image, params, rng):
        # lateral CA is a per-wavelength magnification: red drawn larger, blue smaller, about the centre
        h, w = image.shape[:2]
        out = image.copy()
        for channel, mag in ((0, 1.0 + params.distortion / 4.0), (2, 1.0 - params.distortion / 4.0)):
            m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), 0.0, mag)
            plane = np.ascontiguousarray(image[:, :, channel])
            out[:, :, channel] = cv2.warpAffine(plane, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return out


@register
class Vignetting(Degrader):
    name, label, stage = "vignetting", "vignetting", ACQ
    visible_from = 0.22
    influence = "darkens the corners and borders, so peripheral objects lose brightness and detail"

    class Params(StrictParams):
        strength: float = Field(ge=0, le=1, description="light lost at the corners, fraction")
        cx: float = Field(ge=0, le=1, description="optical centre x, fraction of width")
        cy: float = Field(ge=0, le=1, description="optical centre y, fraction of height")

    def params_for(self, severity, rng):
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
        return self.Params(
            strength=round(ops.lerp(0.1, 0.85, severity), 4), cx=round(float(cx), 4), cy=round(float(cy), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 128)
        d = ops.radial_distance(lh, lw, params.cx * lw, params.cy * lh)
        gain = 1.0 - np.float32(params.strength) * np.clip(d, 0, 1.5) ** 2.5 / np.float32(1.0)
        gain = cv2.resize(np.clip(gain, 0.0, 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (0, 0, 0)), 1.0 - gain)


@register
class Overexposure(Degrader):
    name, label, stage = "overexposure", "overexposure", ACQ
    influence = "brightens the image until highlights clip to white; bright regions lose all texture"

    class Params(StrictParams):
        stops: float = Field(ge=0, le=8, description="exposure increase in photographic stops (EV)")

    def params_for(self, severity, rng):
        return self.Params(stops=round(ops.lerp(0.25, 2.6, severity), 4))

    def apply(self, image, params, rng):
        x = np.arange(256, dtype=np.float64) / 255.0
        linear = np.power(x, 2.2) * 2.0**params.stops
        return ops.lut(image, 255.0 * np.power(np.clip(linear, 0, 1), 1 / 2.2))


@register
class WhiteBalance(Degrader):
    name, label, stage = "white_balance", "white balance shift", ACQ
    visible_from = 0.22
    influence = "casts the whole image warm (orange) or cold (blue), so object colours are no longer true"

    class Params(StrictParams):
        temperature_k: int = Field(ge=1000, le=20000, description="assumed illuminant colour temperature, kelvin")

    def params_for(self, severity, rng):
        warm = bool(rng.random() < 0.5)
        t = ops.lerp(6000, 3000, severity) if warm else ops.lerp(6000, 15000, severity)
        return self.Params(temperature_k=int(round(t)))

    def apply(self, image, params, rng):
        # albumentations' black-body table (3000..15000 K, interpolated) gives the channel gains
        return AF.planckian_jitter(image, params.temperature_k, "blackbody")


@register
class RollingShutter(Degrader):
    name, label, stage = "rolling_shutter", "rolling shutter", ACQ
    geometric = True
    influence = "rows are captured at different times: vertical lines lean and wobble, shapes skew"

    class Params(StrictParams):
        skew: float = Field(ge=-1, le=1, description="horizontal shift of the bottom row vs the top, fraction of width")
        wobble: float = Field(ge=0, le=0.25, description="amplitude of row jitter, fraction of width")
        cycles: float = Field(gt=0, le=50, description="wobble periods over the image height")
        phase: float = Field(ge=0, lt=6.2832, description="wobble phase, radians")

    def params_for(self, severity, rng):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        cycles, phase = rng.uniform(1.0, 4.0), rng.uniform(0, 2 * math.pi)
        return self.Params(
            skew=round(sign * ops.lerp(0.002, 0.1, severity), 5),
            wobble=round(ops.lerp(0.0003, 0.012, severity), 5),
            cycles=round(float(cycles), 4),
            phase=round(float(phase), 4) % 6.2831,
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        t = np.arange(h, dtype=np.float32) / np.float32(max(1, h - 1))
        shift = (params.skew * (t - 0.5) + params.wobble * np.sin(2 * np.pi * params.cycles * t + params.phase)) * w
        map_x = np.arange(w, dtype=np.float32)[None, :] - shift.astype(np.float32)[:, None]
        map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
        return cv2.remap(image, map_x, np.ascontiguousarray(map_y), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@register
class SensorNoise(Degrader):
    name, label, stage = "sensor_noise", "sensor noise", ACQ
    visible_from = 0.22
    influence = "signal-dependent grain (shot plus read noise) speckles the image and buries faint detail"

    class Params(StrictParams):
        shot_gain: float = Field(
            ge=0, le=50, description="shot-noise variance per unit signal (DN), Poisson-Gaussian model"
        )
        read_sigma: float = Field(ge=0, le=128, description="signal-independent read noise, standard deviation in DN")

    def params_for(self, severity, rng):
        return self.Params(
            shot_gain=round(ops.lerp(0.03, 3.0, severity), 5), read_sigma=round(ops.lerp(0.5, 8.0, severity), 4)
        )

    def apply(self, image, params, rng):
        levels = np.arange(256, dtype=np.float32)
        std_table = np.sqrt(levels * params.shot_gain + params.read_sigma**2).astype(np.float32)
        noise = ops.standard_normal(rng, image.shape)
        noise *= cv2.LUT(image, std_table)  # per-pixel std from the pixel's own level
        return ops.add_noise(image, noise)


@register
class IsoNoise(Degrader):
    name, label, stage = "iso_noise", "iso noise", ACQ
    influence = "high-ISO grain with coloured blotches; flat areas turn mottled and fine colour detail is lost"

    class Params(StrictParams):
        luma_sigma: float = Field(ge=0, le=128, description="luminance grain standard deviation, DN")
        chroma_sigma: float = Field(ge=0, le=128, description="colour blotch standard deviation, DN")
        grain: float = Field(ge=1, le=64, description="colour blotch size in pixels (at 512 px shorter side)")

    def params_for(self, severity, rng):
        return self.Params(
            luma_sigma=round(ops.lerp(1.5, 22.0, severity), 4),
            chroma_sigma=round(ops.lerp(1.5, 26.0, severity), 4),
            grain=2.0,
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        g = max(1.0, params.grain * ops.short_side(image) / 512.0)
        ch, cw = max(1, round(h / g)), max(1, round(w / g))
        chroma = ops.gaussian_noise(rng, (ch, cw, 3), params.chroma_sigma)
        chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
        lum = ops.gaussian_noise(rng, (h, w), params.luma_sigma)
        x = image.astype(np.float32)
        x += chroma.reshape(h, w, 3)
        x += lum[:, :, None]
        return ops.to_uint8(x)


@register
class ZoomBlur(Degrader):
    name, label, stage = "zoom_blur", "zoom blur", ACQ
    influence = "streaks radiate from the centre as if the lens zoomed during exposure; the borders smear most"

    class Params(StrictParams):
        zoom: float = Field(ge=0, le=1, description="largest extra magnification during the exposure (0.1 = 10%)")
        cx: float = Field(ge=0, le=1, description="zoom centre x, fraction of width")
        cy: float = Field(ge=0, le=1, description="zoom centre y, fraction of height")

    def params_for(self, severity, rng):
        cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
        return self.Params(
            zoom=round(ops.lerp(0.003, 0.25, severity), 5), cx=round(float(cx), 4), cy=round(float(cy), 4)
        )

    def apply(self, image, params, rng):
        # average of 16 copies magnified evenly in log-scale, built by 4 doublings: each pass
        # averages the running result with itself magnified by the next power of the base step
        h, w = image.shape[:2]
        cx, cy = params.cx * (w - 1), params.cy * (h - 1)
        step = (1.0 + params.zoom) ** (1.0 / 16.0)
        out = image
        for k in range(4):
            out = cv2.addWeighted(out, 0.5, ops.magnify(out, step ** (2**k), cx, cy), 0.5, 0.0)
        return out


@register
class LensDistortion(Degrader):
    name, label, stage = "lens_distortion", "lens distortion", ACQ
    geometric = True
    influence = "straight lines bow outwards (barrel) or inwards (pincushion); shapes near the borders are warped"

    class Params(StrictParams):
        k1: float = Field(
            ge=-1, le=1, description="radial distortion coefficient (> 0 barrel, < 0 pincushion), at the half diagonal"
        )

    def params_for(self, severity, rng):
        sign = 1.0 if rng.random() < 0.6 else -1.0
        return self.Params(k1=round(sign * ops.lerp(0.005, 0.3, severity), 5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 128)
        # inverse map on a coarse grid (it is smooth), upscaled to full size
        ys = np.linspace(0, h - 1, lh, dtype=np.float32)[:, None]
        xs = np.linspace(0, w - 1, lw, dtype=np.float32)[None, :]
        cx, cy, half = (w - 1) / 2.0, (h - 1) / 2.0, 0.5 * math.hypot(w, h)
        dx, dy = (xs - cx) / half, (ys - cy) / half
        r2 = dx * dx + dy * dy
        scale = (1.0 - params.k1 * 0.5) * (1.0 + params.k1 * r2)  # keep the frame roughly filled
        map_x = cv2.resize((cx + dx * scale * half).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize((cy + dy * scale * half).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@register
class SpeckleNoise(Degrader):
    name, label, stage = "speckle_noise", "speckle noise", ACQ
    visible_from = 0.22
    influence = "multiplicative grain that is strongest in bright areas, giving them a mottled, sandy look"

    class Params(StrictParams):
        sigma: float = Field(ge=0, le=2, description="std of the multiplicative factor around 1 (0.2 = +-20%)")

    def params_for(self, severity, rng):
        return self.Params(sigma=round(ops.lerp(0.03, 0.45, severity), 5))

    def apply(self, image, params, rng):
        noise = ops.gaussian_noise(rng, image.shape, params.sigma)
        noise *= image.astype(np.float32)
        return ops.add_noise(image, noise)


@register
class Rotation(Degrader):
    name, label, stage = "rotation", "rotation", ACQ
    geometric = True
    influence = "tilts the whole frame: horizontals and verticals lean, text runs at a slant, the edges are cropped"

    class Params(StrictParams):
        angle_deg: float = Field(ge=-30, le=30, description="tilt, degrees counter-clockwise (the frame is filled)")

    def params_for(self, severity, rng):
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return self.Params(angle_deg=round(sign * ops.lerp(0.3, 6.0, severity), 4))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        if min(h, w) < 4:
            return image.copy()
        scale = ops.fill_frame_scale(w, h, params.angle_deg)
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), params.angle_deg, scale)
        return ops.warp_affine(image, m)


@register
class Perspective(Degrader):
    name, label, stage = "perspective", "perspective distortion", ACQ
    geometric = True
    influence = "the scene is seen at an angle: parallel lines converge, one side looks larger, shapes are skewed"

    class Params(StrictParams):
        strength: float = Field(
            ge=0,
            le=0.4,
            description="largest inward move of a corner of the seen area, fraction of the side (each "
            "corner's share is drawn from the record's seed)",
        )

    def params_for(self, severity, rng):
        return self.Params(strength=round(ops.lerp(0.01, 0.12, severity), 5))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        shape = rng.uniform(0.3, 1.0, 8)  # the same corners at every severity of one seed
        if min(h, w) < 4:
            return image.copy()
        c = shape * params.strength
        src = np.float32(
            [
                [c[0] * w, c[1] * h],
                [w - 1 - c[2] * w, c[3] * h],
                [w - 1 - c[4] * w, h - 1 - c[5] * h],
                [c[6] * w, h - 1 - c[7] * h],
            ]
        )
        dst = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        m = cv2.getPerspectiveTransform(src, dst)
        return cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=ops.BORDER)


@register
class CameraShake(Degrader):
    name, label, stage = "camera_shake", "camera shake", ACQ
    influence = "a hand-held camera moved during the exposure along a curved path: every edge is smeared into arcs"

    class Params(StrictParams):
        length: float = Field(
            gt=0,
            le=0.1,
            description="path length, fraction of the shorter side (the path's turns are drawn from the record's seed)",
        )

    def params_for(self, severity, rng):
        return self.Params(length=round(ops.lerp(0.008, 0.04, severity), 6))

    def apply(self, image, params, rng):
        start = float(rng.uniform(-math.pi, math.pi))
        turns = rng.normal(0.0, 0.6, 7)
        length = ops.frac_px(image, params.length)
        if length <= 1.0 or ops.short_side(image) < 4:
            return image.copy()
        if length > 12.0:  # long paths: blur at reduced resolution (nothing finer than the path survives anyway)
            h, w = image.shape[:2]
            scale = 12.0 / length
            small = cv2.resize(
                image, (max(4, round(w * scale)), max(4, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            small = self._shake(small, 12.0, start, turns)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return self._shake(image, length, start, turns)

    @staticmethod
    def _shake(image: np.ndarray, length: float, start: float, turns: np.ndarray) -> np.ndarray:
        step = length / 8.0
        angle, x, y, pts = 0.0, 0.0, 0.0, [(0.0, 0.0)]
        for turn in [start, *turns]:
            angle += float(turn)
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            pts.append((x, y))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        size = int(math.ceil(max(max(xs) - min(xs), max(ys) - min(ys)))) + 3
        size += 1 - size % 2
        kernel = np.zeros((size, size), np.float32)
        size += 2 * int(
            math.ceil(
                max(abs(sum(xs) / len(xs) - (max(xs) + min(xs)) / 2), abs(sum(ys) / len(ys) - (max(ys) + min(ys)) / 2))
            )
        )
        kernel = np.zeros((size, size), np.float32)
        # the path's mean point sits on the kernel's centre: the blur smears, it does not shift the picture
        ox = (size - 1) / 2.0 - sum(xs) / len(xs)
        oy = (size - 1) / 2.0 - sum(ys) / len(ys)
        # drawn at 8x and averaged down: a smooth kernel even for paths of a pixel or two
        big = np.zeros((size * 8, size * 8), np.float32)
        poly = np.int32([[round((px + ox + 0.5) * 8 * 4), round((py + oy + 0.5) * 8 * 4)] for px, py in pts])
        cv2.polylines(big, [poly], False, 1.0, thickness=4, lineType=cv2.LINE_AA, shift=2)
        kernel = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
        if kernel.sum() <= 0:
            return image.copy()
        return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=ops.BORDER)


@register
class Demosaicing(Degrader):
    name, label, stage = "demosaicing", "demosaicing artefacts", ACQ
    visible_from = 0.11
    influence = "a cheap sensor's colour filter shows through: zipper edges and false colour fringes on fine detail"

    class Params(StrictParams):
        scale: float = Field(ge=1, le=8, description="the sensor's pixels are this many image pixels wide")

    def params_for(self, severity, rng):
        return self.Params(scale=round(ops.lerp(1.0, 3.0, severity), 4))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        sh, sw = max(2, round(h / params.scale)), max(2, round(w / params.scale))
        small = image if (sh, sw) == (h, w) else cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        bayer = np.empty(small.shape[:2], np.uint8)  # RGGB mosaic: one colour per photosite
        bayer[0::2, 0::2] = small[0::2, 0::2, 0]
        bayer[0::2, 1::2] = small[0::2, 1::2, 1]
        bayer[1::2, 0::2] = small[1::2, 0::2, 1]
        bayer[1::2, 1::2] = small[1::2, 1::2, 2]
        rgb = cv2.cvtColor(bayer, cv2.COLOR_BayerBG2RGB)  # OpenCV names the pattern from the second row
        if (sh, sw) == (h, w):
            return rgb
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
