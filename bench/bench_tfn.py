"""TFN's deployable graph per image at 1 and 20 faces, and the cost of the second refinement step.

Lin et al. (Sec. IV-A, V-B) run the landmark and attribute subnets on the detection
subnet's refined boxes (two-step refinement) instead of on the proposals. This script
times, per image (compiled ``tf.function``, inference mode, best of ``--repeats``
runs after warm-up, ``--batch`` images per call), on synthetic scenes with 1 and 20
faces laid on a grid:

* ``serving``: the deployable graph (``registry`` ``serving_model``: stem, RPN,
  proposals, detection subnet, NMS, landmark and attribute subnets), with
  ``max_detections`` = the number of faces and no score threshold, so every face
  row runs the face subnets; with ``two_step`` on (TFN) and off (the face subnets
  read the kept proposals);
* ``training``: the training graph's forward pass with the faces' boxes as
  ``face_rois``: with two steps the landmark and attribute subnets read the boxes
  AND their refinement (``2Q`` samples), without only the boxes (``Q``).

The model is untrained (seeded): the times depend on shapes, not on weights. Every
row must be measured; one that fails prints ``ERROR`` and the script exits with
status 1.

Usage::

    python bench/bench_tfn.py                       # small preset (192 px), batch 1
    python bench/bench_tfn.py --preset tiny --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FACE_COUNTS = (1, 20)
GRAPHS = ("serving", "training")


def machine_line() -> str:
    from keras_facemt.machine import machine_info

    m = machine_info()
    return (f"{m['cpu']} | {m['usable_cores']} usable cores | 1-min load {m['load_average_1min']} | "
            f"Python {m['python']} | TF {m['tensorflow']}")


def face_boxes(n_faces: int, batch: int):
    """``[batch, n, 4]`` boxes of the grid cells ``bench_uniface_faces.scenes`` draws the faces in."""
    import numpy as np

    cols = int(math.ceil(math.sqrt(n_faces)))
    cells = [divmod(k, cols) for k in range(n_faces)]
    boxes = np.array([[c / cols, r / cols, (c + 1) / cols, (r + 1) / cols] for r, c in cells], np.float32)
    return np.repeat(boxes[None], batch, axis=0)


def measure(graph: str, two_step: bool, n_faces: int, preset: str, batch: int, repeats: int) -> float:
    """Seconds per image of one row (see the module docstring)."""
    import keras
    import tensorflow as tf

    from bench_uniface_faces import scenes, timed
    from keras_facemt.models.registry import get_system

    system = get_system("tfn")
    cfg = dataclasses.replace(system.config(preset), two_step=two_step, max_detections=n_faces, score_threshold=0.0)
    keras.utils.set_random_seed(0)
    model = system.build(cfg)
    images, _ = scenes(n_faces, batch, cfg.image_size)
    x = tf.constant(images)
    if graph == "serving":
        served = system.serving_model(model, cfg)

        @tf.function(reduce_retracing=True)
        def run(image):
            return served({"image": image}, training=False)

        args = (x,)
    else:
        @tf.function(reduce_retracing=True)
        def run(image, rois):
            return model({"image": image, "face_rois": rois}, training=False)

        args = (x, tf.constant(face_boxes(n_faces, batch)))
    seconds = timed(run, args, repeats) / batch
    if not math.isfinite(seconds) or seconds <= 0:
        raise RuntimeError(f"no usable time ({seconds})")
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", help="tfn preset (tiny, small, paper)")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    print(machine_line())
    print(f"preset={args.preset} batch={args.batch} repeats={args.repeats} (per-image milliseconds, best of repeats)")
    print(f"{'graph':>8} | {'faces':>5} | {'two-step ms':>11} | {'one-step ms':>11} | {'2nd step ms':>11} | "
          f"{'2nd step %':>10}")
    print("-" * 73)
    failed = []
    for graph in GRAPHS:
        for n in FACE_COUNTS:
            times = {}
            for two_step in (True, False):
                try:
                    times[two_step] = measure(graph, two_step, n, args.preset, args.batch, args.repeats)
                except Exception as e:  # noqa: BLE001 - a row that cannot be measured is reported, then fails the run
                    failed.append(f"{graph}/{n} faces/{'two' if two_step else 'one'}-step: {type(e).__name__}: {e}")
            if len(times) < 2:
                print(f"{graph:>8} | {n:>5} | ERROR: {failed[-1]}")
                continue
            extra = times[True] - times[False]
            print(f"{graph:>8} | {n:>5} | {times[True] * 1e3:>11.2f} | {times[False] * 1e3:>11.2f} | "
                  f"{extra * 1e3:>+11.2f} | {100 * extra / times[False]:>+9.1f}%")
    if failed:
        print("\nUnmeasured rows (exit status 1):\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
