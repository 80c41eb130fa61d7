"""Noise images that stand in for masked images, by the names the FOCUS reference code uses.

Noise is made in pixel space at the image's own size, BEFORE the processor, so a noised row has exactly the
same token layout as a clean one. Every function takes the clean image as a float array in [0, 1] (H, W, 3),
the scale ``s`` and a numpy ``Generator``, and returns a float array in [0, 1]; ``make_noise`` turns that into
a uint8 RGB image with the reference code's truncation (``(x * 255).astype(uint8)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from focus_integrations.errors import InvalidOptionError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])

NoiseFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

# Severity-1 constants of the reference code's corruption modes.
_SHOT_PHOTONS = 60
_IMPULSE_AMOUNT = 0.03
_SPECKLE_STD = 0.15


def _imagenet_norm(x: np.ndarray) -> np.ndarray:
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def _constant(value: float) -> NoiseFn:
    return lambda x, s, rng: np.full(x.shape, value)


def _random_uint8(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=x.shape).astype(np.float64) / 255.0


def _gaussian(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.0, size=x.shape)


def _uniform(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=x.shape)


def _imagenet_mix(sample: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]) -> NoiseFn:
    # out = ((1 - s) * x_norm + s * u) * std + mean: with s = 1 the result does not depend on the image.
    def fn(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
        return ((1.0 - s) * _imagenet_norm(x) + s * sample(rng, x.shape)) * IMAGENET_STD + IMAGENET_MEAN

    return fn


def _imagenet_diffusion(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # VCD's forward diffusion: 1000-step sigmoid beta schedule, step t = s * 999, on the normalised image.
    # The reference code clips the result without de-normalising it; kept as is for faithfulness.
    steps = 1000
    betas = 1e-5 + (0.5e-2 - 1e-5) / (1 + np.exp(-np.linspace(-6, 6, steps)))
    alpha_bar = np.cumprod(1.0 - betas)[int(s * (steps - 1))]
    return np.sqrt(alpha_bar) * _imagenet_norm(x) + np.sqrt(1 - alpha_bar) * rng.standard_normal(x.shape)


def _shot(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(np.clip(_imagenet_norm(x), 0, 1) * _SHOT_PHOTONS) / _SHOT_PHOTONS


def _impulse(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # salt-and-pepper on every value independently, half salt, half pepper (skimage's "s&p").
    out = _imagenet_norm(x)
    hit = rng.random(x.shape) < _IMPULSE_AMOUNT
    salt = rng.random(x.shape) < 0.5
    out = np.where(hit & salt, 1.0, out)
    return np.where(hit & ~salt, 0.0, out)


def _speckle(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    norm = _imagenet_norm(x)
    return norm + norm * rng.normal(scale=_SPECKLE_STD, size=x.shape)


NOISE_MODES: dict[str, NoiseFn] = {
    "black": _constant(0.0),
    "white": _constant(1.0),
    "gray": _constant(127 / 255),
    "random": _random_uint8,
    "gaussian": _gaussian,
    "uniform": _uniform,
    "imagenet+uniform": _imagenet_mix(lambda rng, shape: rng.uniform(0.0, 1.0, size=shape)),
    "imagenet+gaussian": _imagenet_mix(lambda rng, shape: rng.normal(0.0, 1.0, size=shape)),
    "imagenet+diffusion": _imagenet_diffusion,
    "shot": _shot,
    "impulse": _impulse,
    "speckle": _speckle,
}
DEFAULT_NOISE = "imagenet+uniform"


def check_noise_mode(mode: str) -> None:
    if mode not in NOISE_MODES:
        raise InvalidOptionError(f"unknown noise mode {mode!r}; choose one of {', '.join(NOISE_MODES)}")


def make_noise(
    image: Image.Image, mode: str = DEFAULT_NOISE, scale: float = 1.0, rng: np.random.Generator | None = None
) -> Image.Image:
    """A noise image with the same size as ``image`` (mode RGB), drawn from ``rng``."""
    check_noise_mode(mode)
    rng = rng if rng is not None else np.random.default_rng()
    clean = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    noisy = np.clip(NOISE_MODES[mode](clean, scale, rng), 0.0, 1.0)
    return Image.fromarray((noisy * 255).astype(np.uint8), mode="RGB")
