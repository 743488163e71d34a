"""Environment: light, weather and the air between the scene and the camera."""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import Field

from robustgen.degrade import ops
from robustgen.degrade.base import Degrader, StrictParams
from robustgen.degrade.registry import register
from robustgen.schemas import Stage

ENV = Stage.ENVIRONMENT


@register
class Darkness(Degrader):
    name, label, stage = "darkness", "darkness", ENV
    influence = "the scene is underlit: shadows sink to black and only bright regions keep readable detail"

    class Params(StrictParams):
        gain: float = Field(gt=0, le=1, description="multiplier on linear light")
        gamma: float = Field(ge=1, le=5, description="extra gamma that crushes the shadows")

    def params_for(self, severity, rng):
        return self.Params(gain=round(ops.lerp(0.85, 0.2, severity), 4), gamma=round(ops.lerp(1.05, 1.6, severity), 4))

    def apply(self, image, params, rng):
        return ops.lut(image, ops.gamma_table(params.gamma, params.gain))


@register
class AtmosphericTurbulence(Degrader):
    name, label, stage = "atmospheric_turbulence", "atmospheric turbulence", ENV
    geometric = True
    influence = "heat shimmer warps the image: straight edges wobble and fine detail is smeared"

    class Params(StrictParams):
        displacement: float = Field(ge=0, le=0.25, description="peak warp, fraction of the shorter side")
        scale: float = Field(gt=0, le=256, description="number of warp cells across the shorter side")
        blur: float = Field(
            ge=0, le=0.1, description="Gaussian sigma of the accompanying blur, fraction of the shorter side"
        )

    def params_for(self, severity, rng):
        return self.Params(
            displacement=round(ops.lerp(0.001, 0.012, severity), 5),
            scale=12.0,
            blur=round(ops.lerp(0.0005, 0.004, severity), 5),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        amp = np.float32(ops.frac_px(image, params.displacement) * 2.0)
        dx = (ops.smooth_field(rng, h, w, params.scale) - 0.5) * amp
        dy = (ops.smooth_field(rng, h, w, params.scale) - 0.5) * amp
        dx += np.arange(w, dtype=np.float32)[None, :]
        dy += np.arange(h, dtype=np.float32)[:, None]
        warped = cv2.remap(image, dx, dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return ops.gaussian_blur(warped, ops.frac_px(image, params.blur))


@register
class Noise(Degrader):
    name, label, stage = "noise", "noise", ENV
    influence = "random grain covers the image; faint lines, small lettering and fine texture drown in speckle"

    class Params(StrictParams):
        sigma: float = Field(ge=0, le=255, description="Gaussian noise standard deviation, DN (0..255 scale)")

    def params_for(self, severity, rng):
        return self.Params(sigma=round(ops.lerp(3.0, 50.0, severity), 4))

    def apply(self, image, params, rng):
        return ops.add_int_noise(image, ops.gaussian_noise_int(rng, image.shape, params.sigma))


@register
class ColorDiffusion(Degrader):
    name, label, stage = "color_diffusion", "color diffusion", ENV
    visible_from = 0.22
    influence = "colours bleed and spread into neighbouring regions, washing boundaries into a coloured glow"

    class Params(StrictParams):
        spread: float = Field(
            gt=0, le=0.5, description="diffusion radius (Gaussian sigma), fraction of the shorter side"
        )
        amount: float = Field(ge=0, le=1, description="weight of the diffused colour")

    def params_for(self, severity, rng):
        return self.Params(
            spread=round(ops.lerp(0.01, 0.06, severity), 5), amount=round(ops.lerp(0.08, 0.6, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 256)
        small = ops.resize(image, lw, lh, cv2.INTER_AREA)
        diffused = ops.gaussian_blur(small, params.spread * min(lh, lw))
        diffused = ops.resize(diffused, w, h, cv2.INTER_LINEAR)
        ycc, dcc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb), cv2.cvtColor(diffused, cv2.COLOR_RGB2YCrCb)
        # chroma follows the diffused image fully, luminance only by ``amount``
        a = params.amount
        ycc[:, :, 0] = cv2.addWeighted(ycc[:, :, 0], 1 - a, dcc[:, :, 0], a, 0)
        ycc[:, :, 1:] = cv2.addWeighted(ycc[:, :, 1:], 1 - min(1.0, 1.6 * a), dcc[:, :, 1:], min(1.0, 1.6 * a), 0)
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


@register
class Fog(Degrader):
    name, label, stage = "fog", "fog", ENV
    influence = "a milky haze lowers contrast with distance; far objects fade into a bright veil"

    class Params(StrictParams):
        density: float = Field(ge=0, le=10, description="extinction coefficient (higher = thicker fog)")
        airlight: float = Field(ge=0, le=1, description="fog brightness, fraction of full scale")

    def params_for(self, severity, rng):
        return self.Params(
            density=round(ops.lerp(0.15, 1.7, severity), 4), airlight=round(float(rng.uniform(0.78, 0.95)), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 128)
        # depth: far at the top, plus patchy variation
        depth = np.linspace(1.0, 0.35, lh, dtype=np.float32)[:, None] + 0.5 * ops.fractal_field(rng, lh, lw, 3.0, 3)
        trans = np.exp(-np.float32(params.density) * depth)
        trans = cv2.resize(trans, (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (255 * params.airlight,) * 3), 1.0 - trans)


@register
class Rain(Degrader):
    name, label, stage = "rain", "rain", ENV
    influence = "slanted bright streaks and a dim, hazy look hide small objects and break up edges"

    class Params(StrictParams):
        density: float = Field(ge=0, le=50, description="streaks per 100x100 pixel area")
        length: float = Field(gt=0, le=1, description="streak length, fraction of the shorter side")
        angle_deg: float = Field(ge=-90, le=90, description="streak angle from vertical, degrees")
        brightness: float = Field(ge=0, le=1, description="streak opacity")

    def params_for(self, severity, rng):
        angle = float(rng.uniform(-25, 25))
        return self.Params(
            density=round(ops.lerp(1.0, 14.0, severity), 3),
            length=round(ops.lerp(0.03, 0.09, severity), 4),
            angle_deg=round(angle, 2),
            brightness=round(ops.lerp(0.35, 0.8, severity), 3),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n = int(round(params.density * h * w / 10000.0))
        layer = np.zeros((h, w), np.uint8)
        length = max(2.0, ops.frac_px(image, params.length))
        rad = math.radians(params.angle_deg)
        ddx, ddy = length * math.sin(rad), length * math.cos(rad)
        xs, ys = rng.uniform(-ddx, w, n), rng.uniform(-length, h, n)
        shade = rng.integers(150, 256, n)
        thick = 1 if ops.short_side(image) < 700 else 2
        ends = [a.astype(np.int64).tolist() for a in (xs, ys, xs + ddx, ys + ddy)]  # truncated, as int() does
        for x0, y0, x1, y1, c in zip(*ends, shade.tolist(), strict=True):
            # plain 8-connected lines: the blur below smooths their steps as anti-aliasing would, at half the cost
            cv2.line(layer, (x0, y0), (x1, y1), c, thick, cv2.LINE_8)
        layer = cv2.GaussianBlur(layer, (0, 0), 0.7)
        # the dimmed scene a * x + b, made directly as its inverse 255 - a * x - b (never negative: a + b <= 1)
        a, b = 1.0 - 0.3 * params.brightness, 12.0 * params.brightness
        inverse_dim = cv2.convertScaleAbs(image, alpha=-a, beta=255.0 - b)
        return ops.screen_under(inverse_dim, cv2.convertScaleAbs(layer, alpha=params.brightness))


@register
class Snow(Degrader):
    name, label, stage = "snow", "snow", ENV
    influence = "white flakes and a pale veil cover the scene, hiding small details and lowering contrast"

    class Params(StrictParams):
        density: float = Field(ge=0, le=50, description="flakes per 100x100 pixel area")
        flake_size: float = Field(gt=0, le=0.1, description="largest flake radius, fraction of the shorter side")
        veil: float = Field(ge=0, le=1, description="whitening of the whole scene")

    def params_for(self, severity, rng):
        return self.Params(
            density=round(ops.lerp(0.8, 9.0, severity), 3),
            flake_size=round(ops.lerp(0.004, 0.012, severity), 5),
            veil=round(ops.lerp(0.03, 0.35, severity), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n = int(round(params.density * h * w / 10000.0))
        layer = np.zeros((h, w), np.uint8)
        rmax = max(1.0, ops.frac_px(image, params.flake_size))
        xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
        rs, shade = rng.uniform(0.3, 1.0, n) * rmax, rng.integers(180, 256, n)
        radii = np.maximum(1, np.rint(rs)).astype(np.int64).tolist()  # rint rounds half to even, as round() does
        for x, y, r, c in zip(xs.tolist(), ys.tolist(), radii, shade.tolist(), strict=True):
            cv2.circle(layer, (x, y), r, c, -1, cv2.LINE_AA)
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, rmax * 0.25))
        # the veiled scene x (1 - v) + c v, made directly as its inverse: (255 - x)(1 - v) + (255 - c) v
        v = params.veil
        inverse_veiled = cv2.addWeighted(image, v - 1.0, ops.solid(image, (20, 17, 10)), v, 255.0 * (1.0 - v))
        return ops.screen_under(inverse_veiled, layer)


@register
class Frost(Degrader):
    name, label, stage = "frost", "frost", ENV
    influence = "icy crystal patterns cover the view, thickest near the borders, hiding what lies behind them"

    class Params(StrictParams):
        opacity: float = Field(ge=0, le=1, description="ice opacity where the ice is thickest")
        coverage: float = Field(ge=0, le=1, description="how far the ice reaches in from the borders")

    def params_for(self, severity, rng):
        return self.Params(
            opacity=round(ops.lerp(0.25, 0.85, severity), 4), coverage=round(ops.lerp(0.15, 0.9, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 384)
        field = ops.fractal_field(rng, lh, lw, 6.0, 4)
        crystals = 1.0 - np.abs(field - 0.5) * 2.0  # ridges where the field crosses its mid level
        crystals = np.clip((crystals - 0.55) / 0.45, 0, 1) ** 1.5
        ys = np.minimum(np.arange(lh), np.arange(lh)[::-1]).astype(np.float32)[:, None] / max(1, lh / 2)
        xs = np.minimum(np.arange(lw), np.arange(lw)[::-1]).astype(np.float32)[None, :] / max(1, lw / 2)
        edge = 1.0 - np.minimum(ys, xs)  # 1 at the border, 0 in the centre
        reach = np.clip((edge - (1.0 - params.coverage)) / max(params.coverage, 1e-3), 0, 1)
        cover = np.clip(reach * (0.35 + 0.65 * crystals) + 0.25 * crystals, 0, 1) * np.float32(params.opacity)
        cover = cv2.resize(cover.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (215, 230, 245)), cover)


@register
class Glare(Degrader):
    name, label, stage = "glare", "glare", ENV
    visible_from = 0.11
    influence = "strong backlight floods part of the frame; objects in front turn into low-contrast silhouettes"

    class Params(StrictParams):
        x: float = Field(ge=0, le=1, description="light centre x, fraction of width")
        y: float = Field(ge=0, le=1, description="light centre y, fraction of height")
        strength: float = Field(ge=0, le=1, description="peak veiling light, fraction of full scale")
        radius: float = Field(gt=0, le=2, description="glare radius, fraction of the image diagonal")

    def params_for(self, severity, rng):
        x, y = rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.5)
        return self.Params(
            x=round(float(x), 4),
            y=round(float(y), 4),
            strength=round(ops.lerp(0.2, 0.92, severity), 4),
            radius=round(ops.lerp(0.3, 0.9, severity), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 128)
        d = ops.radial_distance(lh, lw, params.x * lw, params.y * lh) / np.float32(2.0 * params.radius)
        veil = np.float32(params.strength) * np.exp(-4.0 * d * d)
        veil = cv2.resize(veil.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (255, 250, 235)), veil)


@register
class LowLight(Degrader):
    name, label, stage = "low_light", "low light", ENV
    influence = "a dark scene shot with high gain: everything is dim and covered in coloured noise"

    class Params(StrictParams):
        gain: float = Field(gt=0, le=1, description="multiplier on linear light")
        noise_sigma: float = Field(ge=0, le=255, description="noise standard deviation after darkening, DN")

    def params_for(self, severity, rng):
        return self.Params(
            gain=round(ops.lerp(0.7, 0.2, severity), 4), noise_sigma=round(ops.lerp(2.0, 14.0, severity), 4)
        )

    def apply(self, image, params, rng):
        dark = ops.lut(image, ops.gamma_table(1.0 + 0.6 * (1.0 - params.gain), params.gain))
        return ops.add_int_noise(dark, ops.gaussian_noise_int(rng, image.shape, params.noise_sigma))


@register
class Shadow(Degrader):
    name, label, stage = "shadow", "shadow", ENV
    visible_from = 0.56
    influence = "a cast shadow darkens a large region, hiding detail and changing apparent colours there"

    class Params(StrictParams):
        darkness: float = Field(ge=0, le=1, description="light removed inside the shadow, fraction")
        size: float = Field(gt=0, le=1, description="shadow polygon scale relative to the image")

    def params_for(self, severity, rng):
        return self.Params(
            darkness=round(ops.lerp(0.15, 0.8, severity), 4), size=round(ops.lerp(0.35, 0.8, severity), 4)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 256)
        cx, cy = rng.uniform(0.2, 0.8) * lw, rng.uniform(0.2, 0.8) * lh
        angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
        radii = rng.uniform(0.5, 1.0, 6) * params.size * max(lh, lw) * 0.6
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        layer = np.zeros((lh, lw), np.uint8)
        cv2.fillPoly(layer, [pts], 255, cv2.LINE_AA)
        mask = ops.soft_mask_from_layer(layer, 0.01 * max(lh, lw)) * np.float32(params.darkness)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (10, 12, 20)), mask)


@register
class Smoke(Degrader):
    name, label, stage = "smoke", "smoke", ENV
    visible_from = 0.33
    influence = "drifting gray plumes cover parts of the scene unevenly, hiding objects behind them"

    class Params(StrictParams):
        opacity: float = Field(ge=0, le=1, description="opacity of the densest smoke")
        coverage: float = Field(ge=0, le=1, description="share of the frame the plumes reach")
        gray: float = Field(ge=0, le=1, description="smoke brightness, fraction of full scale")

    def params_for(self, severity, rng):
        return self.Params(
            opacity=round(ops.lerp(0.25, 0.9, severity), 4),
            coverage=round(ops.lerp(0.25, 0.85, severity), 4),
            gray=round(float(rng.uniform(0.45, 0.75)), 4),
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        lh, lw = ops.low_res_shape(h, w, 160)
        field = ops.fractal_field(rng, lh, lw, 2.5, 4)
        thresh = 1.0 - params.coverage
        dens = np.clip((field - thresh) / max(1e-3, 1.0 - thresh), 0, 1) ** 0.7 * np.float32(params.opacity)
        dens = cv2.resize(dens.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return ops.blend(image, ops.solid(image, (255 * params.gray,) * 3), dens)


@register
class Occlusion(Degrader):
    name, label, stage = "occlusion", "occlusion", ENV
    influence = "foreground objects block part of the view, so whatever lies behind them cannot be seen"

    class Params(StrictParams):
        area: float = Field(ge=0, le=1, description="approximate share of the image covered")

    def params_for(self, severity, rng):
        return self.Params(area=round(ops.lerp(0.02, 0.3, severity), 4))

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        n = 3
        xs, ys = rng.uniform(0.1, 0.9, n) * w, rng.uniform(0.1, 0.9, n) * h
        aspect, angle = rng.uniform(0.4, 1.0, n), rng.uniform(0, 180, n)
        colors = rng.integers(15, 90, (n, 3))
        share = rng.dirichlet(np.ones(n)) * params.area * h * w
        out = image.copy()
        for i in range(n):
            a = math.sqrt(share[i] / (math.pi * aspect[i]))  # ellipse area = pi * a * b
            axes = (max(1, int(round(a))), max(1, int(round(a * aspect[i]))))
            color = tuple(int(c) for c in colors[i])
            cv2.ellipse(out, (int(xs[i]), int(ys[i])), axes, float(angle[i]), 0, 360, color, -1, cv2.LINE_AA)
        return out


@register
class GlassBlur(Degrader):
    name, label, stage = "glass_blur", "glass blur", ENV
    geometric = True
    influence = "seen through frosted or wet glass: pixels are scattered locally and blurred, edges turn grainy"

    class Params(StrictParams):
        sigma: float = Field(
            ge=0, le=0.05, description="Gaussian sigma before scattering, fraction of the shorter side"
        )
        scatter: float = Field(ge=0, le=0.1, description="largest pixel displacement, fraction of the shorter side")

    def params_for(self, severity, rng):
        return self.Params(
            sigma=round(ops.lerp(0.0008, 0.003, severity), 6), scatter=round(ops.lerp(0.002, 0.01, severity), 6)
        )

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        blurred = ops.gaussian_blur(image, ops.frac_px(image, params.sigma))
        d = ops.frac_px(image, params.scatter)
        # one vectorised scatter: every pixel fetches from a random neighbour within +-d
        offs = np.frombuffer(rng.bytes(2 * h * w), dtype=np.uint8).reshape(2, h, w).astype(np.float32)
        offs *= np.float32(2.0 * d / 255.0)
        offs -= np.float32(d)
        map_x = offs[0] + np.arange(w, dtype=np.float32)[None, :]
        map_y = offs[1] + np.arange(h, dtype=np.float32)[:, None]
        scattered = cv2.remap(blurred, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        return ops.gaussian_blur(scattered, ops.frac_px(image, params.sigma) * 0.5)


@register
class Elastic(Degrader):
    name, label, stage = "elastic", "elastic distortion", ENV
    geometric = True
    influence = "the picture is warped like rubber: straight lines wave, shapes bulge and pinch, text wobbles"

    class Params(StrictParams):
        alpha: float = Field(ge=0, le=0.1, description="largest displacement, fraction of the shorter side")
        cells: float = Field(ge=1, le=64, description="waves across the shorter side (lower = smoother)")

    def params_for(self, severity, rng):
        return self.Params(alpha=round(ops.lerp(0.002, 0.03, severity), 6), cells=6.0)

    def apply(self, image, params, rng):
        h, w = image.shape[:2]
        if min(h, w) < 4:
            return image.copy()
        amp = ops.frac_px(image, params.alpha)
        lh, lw = ops.low_res_shape(h, w, 128)
        dx = (ops.smooth_field(rng, lh, lw, params.cells) * 2.0 - 1.0) * amp
        dy = (ops.smooth_field(rng, lh, lw, params.cells) * 2.0 - 1.0) * amp
        dx = cv2.resize(dx, (w, h), interpolation=cv2.INTER_LINEAR)
        dy = cv2.resize(dy, (w, h), interpolation=cv2.INTER_LINEAR)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return cv2.remap(image, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
