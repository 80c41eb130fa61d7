"""Memory and CPU time of noise generation: banded ``make_noise`` against the whole-array computation.

``noise.noise_array`` is the unbanded definition (the image as full-size float64 arrays, as the reference code
computes it); ``noise.make_noise`` gives the same pixels with bounded memory. Both run side by side in this
process on the same image and generator seed; peak memory is what tracemalloc sees (numpy allocations), CPU
time is ``time.process_time``.

    python benchmarks/bench_noise.py [--width 2000 --height 1500] [--modes imagenet+uniform impulse shot]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from PIL import Image

from focus_integrations.noise import make_noise, noise_array


def measure(function, *args) -> tuple[float, float, object]:
    tracemalloc.start()
    started = time.process_time()
    result = function(*args)
    cpu = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--modes", nargs="+", default=["imagenet+uniform", "impulse", "shot", "speckle"])
    args = parser.parse_args()
    pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    print(f"image {args.width}x{args.height} ({args.width * args.height / 1e6:.1f} megapixels)")
    print(
        "| mode | whole-array peak MiB | banded peak MiB | ratio | whole-array CPU s | banded CPU s | same pixels |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes:
        whole_peak, whole_cpu, whole = measure(noise_array, pixels, mode, 1.0, np.random.default_rng(1))
        band_peak, band_cpu, banded = measure(make_noise, image, mode, 1.0, np.random.default_rng(1))
        same = np.array_equal(np.asarray(banded), whole)
        print(
            f"| {mode} | {whole_peak:.1f} | {band_peak:.1f} | {whole_peak / band_peak:.1f}x | "
            f"{whole_cpu:.2f} | {band_cpu:.2f} | {same} |"
        )


if __name__ == "__main__":
    main()
