"""Dataset conversion throughput and peak memory (``tfrecords_tools``).

Builds an MTFL-layout dataset (``training.txt`` + 250x250 JPEGs, the LFW image size
MTFL ships) in a temporary directory and converts it with ``run_conversion``:

* ``serial``: one process; images/s per core = images / process CPU seconds (the
  work done, stable on a shared machine) and images / wall second;
* ``workers=N``: the parallel path, wall-clock images/s;
* ``peak``: a conversion of ``--peak-images`` images (10,000 by default) in a fresh
  process, reporting the maximum resident memory of the parent and of the largest
  worker (``getrusage``).

Floors: at least 300 images/s per core, and the 10,000-image conversion peaks below
1 GiB. Prints a table with the machine's description; exits with status 1 if a
floor is missed.

Usage:
    python bench/bench_convert.py
    python bench/bench_convert.py --images 2000 --workers 2 --peak-images 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FLOOR_PER_CORE = 300.0
FLOOR_PEAK_MIB = 1024.0
SIZE = 250
DISTINCT = 64  # distinct JPEGs, cycled (the converter never sees two files as one)


def machine_info() -> str:
    from keras_facemt.machine import cpu_model

    cpu = cpu_model()
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, {platform.system()}"


def make_mtfl(root: str, n: int) -> None:
    """MTFL layout with ``n`` 250x250 JPEGs (about 15 KB each, like LFW's)."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "lfw_5590"), exist_ok=True)
    blobs = []
    for k in range(DISTINCT):
        img = cv2.GaussianBlur(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), (9, 9), 3)
        cv2.ellipse(img, (125, 125), (60, 80), 0, 0, 360, (130, 160, 200), -1)
        blobs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    lines = []
    for i in range(n):
        rel = f"lfw_5590/Person_{i // 10:05d}_{i % 10:04d}.jpg"
        with open(os.path.join(root, rel), "wb") as f:
            f.write(blobs[i % DISTINCT])
        pts = np.array([[100, 110], [150, 110], [125, 140], [105, 170], [145, 170]]) + rng.uniform(-3, 3, (5, 2))
        lines.append(rel.replace("/", "\\") + " " + " ".join(f"{v:.2f}" for v in list(pts[:, 0]) + list(pts[:, 1]))
                     + f" {1 + i % 2} {1 + i % 2} 2 3")
    with open(os.path.join(root, "training.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def convert(root: str, out: str, workers: int):
    from tfrecords_tools.common import run_conversion
    from tfrecords_tools.convert_mtfl import MtflConverter

    t0, c0 = time.perf_counter(), time.process_time()
    result = run_conversion(MtflConverter(root), out, workers=workers, overwrite=True, verify_records=16)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, wall, cpu, children


def peak_child(args) -> int:
    """Runs in a fresh process: converts ``--peak-images`` images, prints peaks as JSON."""
    tmp = tempfile.mkdtemp(prefix="bench_convert_peak_")
    try:
        make_mtfl(os.path.join(tmp, "src"), args.peak_images)
        result, wall, _, _ = convert(os.path.join(tmp, "src"), os.path.join(tmp, "out"), args.workers)
        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"images": sum(result.counts.values()), "wall": wall, "self_mib": self_kib / 1024,
                          "child_mib": child_kib / 1024}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000, help="images in the throughput runs")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--peak-images", type=int, default=10000, help="images in the memory run (0: skip)")
    p.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peak_child:
        return peak_child(args)

    print(f"machine: {machine_info()}")
    rows = []
    ok = True
    tmp = tempfile.mkdtemp(prefix="bench_convert_")
    try:
        src = os.path.join(tmp, "src")
        make_mtfl(src, args.images)
        # Warm-up: imports, the decoder graph, the page cache.
        convert(src, os.path.join(tmp, "warm"), 1)
        result, wall, cpu, _ = convert(src, os.path.join(tmp, "serial"), 1)
        n = sum(result.counts.values())
        per_core = n / cpu
        ok &= per_core >= FLOOR_PER_CORE
        rows.append(("serial (1 process)", n, f"{n / wall:,.0f}", f"{per_core:,.0f}",
                     f">= {FLOOR_PER_CORE:.0f}/core " + ("ok" if per_core >= FLOOR_PER_CORE else "MISSED")))
        if args.workers > 1:
            result, wall, cpu, ch = convert(src, os.path.join(tmp, "parallel"), args.workers)
            total_cpu = cpu + ch.ru_utime + ch.ru_stime
            rows.append((f"workers={args.workers}", n, f"{n / wall:,.0f}", f"{n / total_cpu:,.0f}", ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.peak_images:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--peak-child", "--workers",
                              str(args.workers), "--peak-images", str(args.peak_images)],
                             capture_output=True, text=True, check=True)
        peak = json.loads(out.stdout.strip().splitlines()[-1])
        worst = max(peak["self_mib"], peak["child_mib"])
        ok &= worst < FLOOR_PEAK_MIB
        rows.append((f"peak, workers={args.workers}", peak["images"], f"{peak['images'] / peak['wall']:,.0f}", "",
                     f"parent {peak['self_mib']:,.0f} MiB, largest worker {peak['child_mib']:,.0f} MiB "
                     f"(< {FLOOR_PEAK_MIB:.0f}) " + ("ok" if worst < FLOOR_PEAK_MIB else "MISSED")))
    header = ("run", "images", "images/s (wall)", "images/s per core (CPU)", "floor")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"\n{SIZE}x{SIZE} JPEGs, MTFL layout (5 points + 4 labels per line); original bytes stored, "
          "sizes read from the JPEG header.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
