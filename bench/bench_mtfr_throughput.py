"""MTFR training throughput (images/s) per preset and block: one SGD step of Eq. 2
(identity softmax + attribute MSE) on random aligned-size inputs, after warm-up.

Prints a table with the machine's description. The README records the `paper` preset's
number from an accelerator when one is available.

Usage:
    python bench/bench_mtfr_throughput.py                      # small and tiny, CPU
    python bench/bench_mtfr_throughput.py --presets paper --batch 40 --steps 50   # accelerator
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(preset: str, block: str, batch: int, steps: int, jit: bool) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_facemt.models.mtfr import model as mtfr

    cfg = dataclasses.replace(mtfr.PRESETS[preset](), block=block)
    model = mtfr.build_model(cfg)
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    h, w = cfg.image_size
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 1, (batch, h, w, 3)).astype("float32"))
    ids = tf.constant(rng.integers(0, cfg.num_identities, batch))
    attrs = tf.constant(rng.integers(0, 2, (batch, len(cfg.attributes))).astype("float32"))

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            out = model({"image": x}, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, out["identity_logits"]))
            loss += 0.1 * tf.reduce_mean(tf.reduce_sum(0.5 * tf.square(out["attributes"] - attrs), -1))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    seconds = time.perf_counter() - t
    return {"preset": preset, "block": block, "params": model.count_params(), "batch": batch,
            "images_per_s": batch * steps / seconds}


def main(argv=None) -> int:
    from keras_facemt.machine import machine_info

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--blocks", default="fast,full")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--jit", action="store_true", help="XLA-compile the step")
    args = p.parse_args(argv)
    info = machine_info()
    print(f"# MTFR training throughput ({info['cpu']}, {info['cpus']} CPUs, devices {info['devices']}, "
          f"TensorFlow {info['tensorflow']}, load average {info.get('load_average_1min')})\n")
    print("| preset | block | params | batch | images/s |\n|---|---|---|---|---|")
    for preset in args.presets.split(","):
        for block in args.blocks.split(","):
            r = measure(preset, block, args.batch, args.steps, args.jit)
            print(f"| {r['preset']} | {r['block']} | {r['params']:,} | {r['batch']} | {r['images_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
