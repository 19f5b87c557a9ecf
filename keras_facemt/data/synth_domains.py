"""SynthFace domains: named image styles that make synthetic datasets differ.

Real face datasets differ in lighting, colour balance, sharpness, sensor noise,
compression and backgrounds; per-dataset batch normalisation (iFAN Sec. 3.3) exists
because of it. A ``SynthDomain`` fixes those statistics for a synthetic dataset:

===========  =====================================================================
studio       soft frontal light, neutral colour, sharp, clean, JPEG 95, plain backdrop
outdoor      hard side light, warm cast, saturated, JPEG 85, foliage background
lowlight     dark, blue cast, desaturated, noisy, slightly blurred, JPEG 70
webcam       over-exposed, green cast, blurred, noisy, JPEG 45, indoor clutter
vintage      sepia, faded, grainy, vignetted, soft, JPEG 65, paper texture
===========  =====================================================================

``render_background`` draws the domain's backdrop and ``apply_domain`` applies its
lighting, colour cast, saturation, vignette, blur and noise to a rendered image;
the JPEG quality is used when the record is encoded. Each sample jitters the
lighting and cast a little around the domain's values.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import cv2
import numpy as np

from keras_facemt.errors import ConfigError

BACKGROUNDS = ("plain", "foliage", "dark", "indoor", "paper", "stripes")


@dataclasses.dataclass(frozen=True)
class SynthDomain:
    """An image style.

    Attributes:
        name: Domain name (the default dataset name of its records).
        gain: Overall exposure multiplier.
        light_contrast: Strength of the directional light ramp (0: flat).
        light_azimuth: Direction the light comes from, degrees (0: from the image
            right, 90: from above).
        light_jitter: Per-sample std of the azimuth, degrees.
        colour_cast: RGB multipliers.
        saturation: 1 keeps colours, 0 is gray.
        gamma: Output gamma (>1 darkens mid-tones).
        vignette: Corner darkening in [0, 1].
        blur: Gaussian blur sigma in pixels at 128 px (scaled with image size).
        noise: Gaussian noise std in 0..255 units.
        mono_noise: Noise shared by the three channels (film grain) when True.
        jpeg_quality: JPEG quality of the encoded records.
        background: One of ``BACKGROUNDS``.
    """

    name: str
    gain: float = 1.0
    light_contrast: float = 0.1
    light_azimuth: float = 90.0
    light_jitter: float = 20.0
    colour_cast: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    gamma: float = 1.0
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 1.0
    mono_noise: bool = False
    jpeg_quality: int = 95
    background: str = "plain"

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ConfigError(
                f"Unknown SynthFace background {self.background!r}; expected one of "
                f"{list(BACKGROUNDS)}. Received: background={self.background!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in [1, 100]. Received: jpeg_quality={self.jpeg_quality}")
        if self.gain <= 0 or self.gamma <= 0:
            raise ConfigError(f"gain and gamma must be positive. Received: gain={self.gain}, gamma={self.gamma}")


DOMAINS: Dict[str, SynthDomain] = {
    d.name: d
    for d in (
        SynthDomain("studio", gain=1.02, light_contrast=0.12, light_azimuth=90.0, noise=1.5,
                    jpeg_quality=95, background="plain"),
        SynthDomain("outdoor", gain=1.1, light_contrast=0.55, light_azimuth=35.0, light_jitter=35.0,
                    colour_cast=(1.08, 1.0, 0.86), saturation=1.2, noise=3.0, jpeg_quality=85,
                    background="foliage"),
        SynthDomain("lowlight", gain=0.5, light_contrast=0.35, light_azimuth=160.0,
                    colour_cast=(0.84, 0.95, 1.18), saturation=0.65, gamma=1.15, blur=0.7, noise=11.0,
                    jpeg_quality=70, background="dark"),
        SynthDomain("webcam", gain=1.2, light_contrast=0.15, light_azimuth=100.0,
                    colour_cast=(0.94, 1.08, 0.93), saturation=0.85, blur=1.2, noise=6.0,
                    jpeg_quality=45, background="indoor"),
        SynthDomain("vintage", gain=0.95, light_contrast=0.2, colour_cast=(1.12, 0.98, 0.76),
                    saturation=0.4, vignette=0.55, blur=0.8, noise=8.0, mono_noise=True,
                    jpeg_quality=65, background="paper"),
    )
}  # fmt: skip


def get_domain(domain) -> SynthDomain:
    """Returns a domain by name (or passes a ``SynthDomain`` through).

    Raises:
        ConfigError: naming the unknown domain and listing the known ones.
    """
    if isinstance(domain, SynthDomain):
        return domain
    try:
        return DOMAINS[domain]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Unknown SynthFace domain {domain!r}; known domains: {sorted(DOMAINS)}. "
            f"Received: domain={domain!r}"
        ) from None


def _lowres_noise(rng, h, w, cells, channels=3) -> np.ndarray:
    small = rng.random((cells, cells, channels), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def render_background(domain: SynthDomain, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Backdrop float32 ``[height, width, 3]`` in 0..255 for ``domain``."""
    height, width = int(height), int(width)
    kind = domain.background
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    if kind == "plain":
        c0 = rng.uniform(60, 200, 3).astype(np.float32)
        c1 = c0 * rng.uniform(0.7, 1.1)
        img = c0 + (c1 - c0) * ramp + np.zeros((1, width, 1), np.float32)
    elif kind == "foliage":
        sky = np.array([150, 185, 225], np.float32) * rng.uniform(0.85, 1.1)
        leaves = _lowres_noise(rng, height, width, int(rng.integers(6, 14)))
        green = np.array([40, 95, 35], np.float32) + leaves * np.array([90, 110, 50], np.float32)
        horizon = rng.uniform(0.15, 0.5)
        t = np.clip((ramp - horizon) * 6.0, 0.0, 1.0)
        img = sky * (1 - t) + green * t
        img = img * (0.75 + 0.5 * _lowres_noise(rng, height, width, 24, 1))
    elif kind == "dark":
        img = 18.0 + 25.0 * _lowres_noise(rng, height, width, 5)
        # Lamps: smooth glows, computed on a 32x32 grid and upsampled.
        yy, xx = np.ogrid[:32, :32]
        glow = np.zeros((32, 32), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.uniform(0, 32), rng.uniform(0, 32 * 0.6)
            rad = rng.uniform(0.05, 0.2) * 32
            glow += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad**2)).astype(np.float32) * rng.uniform(0.5, 1.0)
        glow = cv2.resize(glow, (width, height), interpolation=cv2.INTER_LINEAR)
        img = img + glow[..., None] * np.array([200, 170, 110], np.float32)
    elif kind == "indoor":
        wall = rng.uniform(120, 220, 3).astype(np.float32)
        img = np.broadcast_to(wall, (height, width, 3)).copy()
        floor_y = int(height * rng.uniform(0.6, 0.9))
        img[floor_y:] = rng.uniform(50, 140, 3)
        for _ in range(int(rng.integers(2, 6))):  # shelves, frames, doors
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            w_, h_ = int(rng.integers(width // 10, width // 2)), int(rng.integers(height // 10, height // 2))
            cv2.rectangle(img, (x0, y0), (x0 + w_, y0 + h_), rng.uniform(20, 240, 3).tolist(), -1)
    elif kind == "paper":
        base = np.array([214, 200, 168], np.float32)
        img = base * (0.85 + 0.25 * _lowres_noise(rng, height, width, 10, 1))
        img = img * (0.92 + 0.08 * _lowres_noise(rng, height, width, 40, 1))
    else:  # stripes (wallpaper)
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(6, 24) * width / 128.0
        yy, xx = np.mgrid[:height, :width].astype(np.float32)
        s = 0.5 + 0.5 * np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / period)
        c0, c1 = rng.uniform(40, 230, 3), rng.uniform(40, 230, 3)
        img = (c0 + (c1 - c0) * s[..., None]).astype(np.float32)
    return np.clip(img, 0.0, 255.0).astype(np.float32)


def apply_domain(image: np.ndarray, domain: SynthDomain, rng: np.random.Generator) -> np.ndarray:
    """Applies the domain's photometric style.

    Args:
        image: float32 ``[H, W, 3]`` in 0..255 (the rendered scene).
        domain: The style.
        rng: The sample's generator (jitters light and cast).

    Returns:
        uint8 RGB ``[H, W, 3]``.
    """
    h, w = image.shape[:2]
    az = np.deg2rad(domain.light_azimuth + rng.normal(0.0, domain.light_jitter))
    lx, ly = np.cos(az), -np.sin(az)  # y grows downwards
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    light = 1.0 + np.float32(domain.light_contrast * 0.5) * (xs * np.float32(lx) + ys * np.float32(ly))
    if domain.vignette > 0:
        light = light * (1.0 - np.float32(domain.vignette * 0.5) * (xs**2 + ys**2))
    gain = domain.gain * float(np.exp(rng.normal(0.0, 0.08)))
    cast = np.asarray(domain.colour_cast, np.float64) * (1.0 + rng.normal(0.0, 0.025, 3)) * gain
    # Saturation then colour cast (a tinted image stays tinted): one linear transform.
    sat = domain.saturation
    mix = sat * np.eye(3) + (1.0 - sat) / 3.0 * np.ones((3, 3))
    img = cv2.transform(image, (cast[:, None] * mix).astype(np.float32))
    img *= light[..., None]
    if domain.blur > 0:
        sigma = domain.blur * max(h, w) / 128.0 * float(rng.uniform(0.8, 1.2))
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if domain.noise > 0:
        shape = (h, w, 1) if domain.mono_noise else (h, w, 3)
        # Gaussian noise through a 256-entry inverse-CDF table: an order of
        # magnitude cheaper than drawing normals, same seeded determinism.
        img += _GAUSS_TABLE[rng.integers(0, 256, shape, dtype=np.uint8)] * np.float32(domain.noise)
    np.clip(img, 0.0, 255.0, out=img)
    out = img.astype(np.uint8)
    if domain.gamma != 1.0:
        lut = (255.0 * (np.arange(256) / 255.0) ** domain.gamma).astype(np.uint8)
        out = cv2.LUT(out, lut)
    return out


def _gauss_table() -> np.ndarray:
    # Quantiles of N(0, 1) at the centres of 256 equal-probability bins.
    from statistics import NormalDist

    nd = NormalDist()
    return np.array([nd.inv_cdf((i + 0.5) / 256.0) for i in range(256)], np.float32)


_GAUSS_TABLE = _gauss_table()
