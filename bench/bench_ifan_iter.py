"""Cost of iFAN's task-interaction iterations (Li et al., MM'17, Eq. 4).

For each preset and batch size, times in inference mode (compiled ``tf.function``,
best of ``--repeats`` interleaved runs after warm-up):

* ``backbone``: stem + FC-DenseNet forward at ITER = 0 (no decoders);
* ``ITER=k``: the full model unrolled k times, for k = 0..``--max-iterations``;
* ``extra/iter``: ``(t(ITER=k) - t(ITER=0)) / k``, the cost of one extra iteration
  (backbone again + decoders + re-encoders + integrator).

Both wall-clock and process CPU time are recorded. On a machine shared with other
jobs, wall-clock times of multi-threaded ops swing with the load while CPU time
measures the work done, so the floor is judged on CPU time by default
(``--clock wall`` on a dedicated machine).

Floor: every extra iteration costs at most 1.5x the ITER = 0 backbone forward time.
The script prints a table with the machine's description and exits with status 1 if
the floor is missed.

Usage:
    python bench/bench_ifan_iter.py                       # small and paper, batch 8 and 32
    python bench/bench_ifan_iter.py --presets small --batches 8 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Runnable from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_facemt.models.ifan import model as ifan  # noqa: E402

FLOOR = 1.5
CLOCKS = ("wall", "cpu")
# Each timed model has its own tf.function by design; the retracing warning is noise.
tf.get_logger().setLevel("ERROR")


def machine_info() -> str:
    from keras_facemt.machine import cpu_model, usable_cores

    cpu = cpu_model()
    gpus = tf.config.list_physical_devices("GPU")
    affinity = usable_cores()
    return (
        f"{platform.node()} | {platform.platform()} | {cpu} | {affinity} usable CPU cores | "
        f"GPUs: {len(gpus)} | python {platform.python_version()} | tensorflow {tf.__version__} | "
        f"keras {keras.__version__}"
    )


def _compiled(model):
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def backbone_model(model: keras.Model) -> keras.Model:
    """Stem + backbone at ITER = 0, sharing the layers of ``model``."""
    image = keras.Input(model.input["image"].shape[1:], name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    stem = model.get_layer("backbone_stem")(image, domain=domain)
    features = model.get_layer("backbone_fcdensenet")(stem, domain=domain)
    return keras.Model({"image": image, "domain": domain}, features)


def _run(fn, x):
    """(wall seconds, process CPU seconds) of one forward pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    keras.tree.map_structure(np.asarray, fn(x))  # forces the computation to finish
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(preset: str, batch: int, max_iterations: int, repeats: int, warmup: int):
    """Best-of-``repeats`` seconds per batch for the backbone and ITER = 0..max.

    Returns:
        ``{clock: {"backbone": t, 0: t, 1: t, ...}}`` for clock ``"wall"`` and ``"cpu"``.
    """
    base = ifan.PRESETS[preset]()
    size = base.image_size
    rng = np.random.default_rng(0)
    x = {
        "image": tf.constant(rng.random((batch, size, size, 3), dtype=np.float32)),
        "domain": tf.constant(np.arange(batch) % base.bn_domains, dtype=tf.int32),
    }
    keras.utils.clear_session()
    fns = {}
    for k in range(max_iterations + 1):
        model = ifan.build_model(dataclasses.replace(base, iterations=k))
        if k == 0:
            fns["backbone"] = _compiled(backbone_model(model))
        fns[k] = _compiled(model)
    for fn in fns.values():
        for _ in range(warmup):
            _run(fn, x)
    # Rounds interleave the models so that load from other processes on a shared
    # machine hits all of them alike; the minimum is the least disturbed run.
    best = {clock: {name: float("inf") for name in fns} for clock in CLOCKS}
    for _ in range(repeats):
        for name, fn in fns.items():
            for clock, t in zip(CLOCKS, _run(fn, x)):
                best[clock][name] = min(best[clock][name], t)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=sorted(ifan.PRESETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--max-iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="clock the floor is judged on: process CPU time (default; robust on a shared "
                             "machine) or wall-clock time (on a dedicated machine)")
    args = parser.parse_args(argv)
    if args.max_iterations < 1:
        parser.error(f"--max-iterations must be >= 1. Received: --max-iterations={args.max_iterations}")

    print(f"iFAN interaction-iteration cost (inference, best of {args.repeats} interleaved runs, ms per batch)")
    print(f"machine: {machine_info()}")
    iters = range(1, args.max_iterations + 1)
    header = (["preset", "batch", "clock", "backbone", "ITER=0"] + [f"ITER={k}" for k in iters]
              + [f"extra/iter@{k}" for k in iters] + ["worst ratio", f"<= {FLOOR}x"])
    rows = []
    ok = True
    for preset in args.presets:
        for batch in args.batches:
            best = bench(preset, batch, args.max_iterations, args.repeats, args.warmup)
            for clock in CLOCKS:
                times = best[clock]
                extras = [(times[k] - times[0]) / k for k in iters]
                ratio = max(extras) / times["backbone"]
                passed = ratio <= FLOOR
                if clock == args.clock:
                    ok &= passed
                verdict = ("pass" if passed else "FAIL") if clock == args.clock else ("(pass)" if passed else "(fail)")
                rows.append([preset, str(batch), clock, f"{times['backbone'] * 1e3:.1f}", f"{times[0] * 1e3:.1f}"]
                            + [f"{times[k] * 1e3:.1f}" for k in iters]
                            + [f"{e * 1e3:.1f}" for e in extras]
                            + [f"{ratio:.2f}x", verdict])
            print(f"  measured {preset} batch {batch}", file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print("backbone = stem + FC-DenseNet at ITER=0; extra/iter@k = (t(ITER=k) - t(ITER=0)) / k; "
          "ratio = worst extra/iter / backbone.")
    print(f"cpu = process CPU time (all threads), wall = elapsed time; the floor is judged on {args.clock} "
          "(verdicts of the other clock in parentheses).")
    print("floor met" if ok else "FLOOR MISSED: an extra iteration costs more than "
          f"{FLOOR}x the ITER=0 backbone forward")
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
