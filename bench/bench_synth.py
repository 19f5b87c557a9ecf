"""SynthFace rendering speed on one core (floor: 200 labelled 128x128 crops/s).

Usage::

    python bench/bench_synth.py [--count 300] [--image-size 128]

Prints machine info and a table: per domain, labelled crops/s (image + every
label) and records/s (also JPEG/PNG encoding and serialisation), then scenes/s.
OpenCV runs single-threaded, so the figures are per core. Rates are given in wall
time and in process CPU time (the latter is robust to other load on the host).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLOOR = 200.0


from keras_facemt.machine import cpu_model  # noqa: E402



def machine_info() -> str:
    import cv2
    import numpy as np
    import tensorflow as tf

    return (
        f"platform: {platform.platform()}\n"
        f"cpu: {cpu_model()} ({os.cpu_count()} logical cores; measured on 1)\n"
        f"python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"numpy {np.__version__}, opencv {cv2.__version__}"
    )


def _rate(fn, count):
    fn(0)  # warm-up (imports, caches)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, count + 1):
        fn(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return count / wall, count / max(cpu, 1e-9)


def crops_per_second(domain: str = "studio", count: int = 300, image_size: int = 128, records: bool = False):
    """(wall, cpu) labelled crops per second for one domain on the calling thread."""
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=0, domain=domain, image_size=image_size)
    fn = synth.crop_record if records else synth.render_crop
    return _rate(fn, count)


def main(argv=None) -> int:
    import cv2

    from keras_facemt.data.synthetic import DOMAINS, SynthFace

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--scene-size", type=int, default=256)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    print(machine_info())
    print(f"\nSynthFace crops, {args.image_size}x{args.image_size}, {args.count} per row, one core")
    header = f"| {'domain':<9} | {'crops/s (wall)':>14} | {'crops/s (cpu)':>13} | {'records/s (wall)':>16} | {'records/s (cpu)':>15} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    worst = float("inf")
    for name in DOMAINS:
        rw, rc = crops_per_second(name, args.count, args.image_size)
        ew, ec = crops_per_second(name, args.count, args.image_size, records=True)
        worst = min(worst, rc)
        print(f"| {name:<9} | {rw:>14.0f} | {rc:>13.0f} | {ew:>16.0f} | {ec:>15.0f} |")
    synth = SynthFace(seed=0, image_size=args.scene_size)
    n_faces = sum(synth.render_scene(i)[1]["bbox"].shape[0] for i in range(20))
    sw, sc = _rate(synth.render_scene, 40)
    print(f"\nSynthFace scenes, {args.scene_size}x{args.scene_size}, 1-20 faces (mean {n_faces / 20:.1f}): "
          f"{sw:.1f} scenes/s wall, {sc:.1f} scenes/s cpu (~{sc * n_faces / 20:.0f} faces/s)")  # fmt: skip
    verdict = "PASS" if worst >= FLOOR else "FAIL"
    print(f"\nfloor {FLOOR:.0f} labelled crops/s on one core (slowest domain, cpu time): {worst:.0f} -> {verdict}")
    return 0 if worst >= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
