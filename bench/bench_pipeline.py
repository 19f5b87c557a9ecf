"""Input-pipeline throughput against what one iFAN training step consumes.

Prints a table with machine information:

* SynthFace renders per second (``keras_facemt.data.synthetic.SynthFace.render``);
* pipeline examples per second reading 128x128 JPEG shards (landmarks, parsing and
  emotion labels) with training augmentation, at the iFAN ``small`` input size and
  at 128x128;
* examples per second one iFAN ``small`` training step consumes (forward, the
  masked iFAN loss terms, backward and an Adam update, batch of the same size);
* the ratio pipeline / training step (floor: 5x; the script exits 1 below it).

The pipeline and the model run in separate phases, each with the whole machine,
so the ratio says how much headroom the input side has over the step it feeds.

Usage::

    python bench/bench_pipeline.py [--examples 512] [--batch 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from keras_facemt.configs.data import AugmentConfig, DataConfig  # noqa: E402
from keras_facemt.data.pipeline import build_dataset  # noqa: E402

FLOOR = 5.0
TASKS = ("landmarks", "parsing", "emotion")


from keras_facemt.machine import cpu_model, load_average, usable_cores  # noqa: E402



def machine_info() -> list:
    import keras

    cores = usable_cores()
    load = load_average()
    return [
        ("CPU", cpu_model()),
        ("cores available", str(cores)),
        ("load average (1 min) at start", f"{load:.2f}"),
        ("Python", platform.python_version()),
        ("TensorFlow", tf.__version__),
        ("Keras", keras.__version__),
        ("GPUs visible to TF", str(len(tf.config.list_physical_devices("GPU")))),
    ]


def bench_synthface(n: int) -> float:
    """SynthFace crops rendered per second."""
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=0, image_size=128)
    synth.render(0)
    t = time.perf_counter()
    for i in range(1, n + 1):
        synth.render(i)
    return n / (time.perf_counter() - t)


def write_shards(out_dir: str, count: int) -> None:
    """128x128 SynthFace crop shards carrying landmarks, parsing and emotion labels.

    No fallback content: an import error here is the benchmark's error, because any
    other images would measure a different (JPEG size, decode cost) pipeline.
    """
    from keras_facemt.data.synthetic import write_synthetic

    write_synthetic(out_dir, kind="crops", tasks=TASKS, count=count, shards=4, seed=0, image_size=128,
                    splits=(("train", 1.0),), landmark_scheme="mtfl5")


def stream_config(data_dir: str, image_size: int, batch: int) -> DataConfig:
    return DataConfig(name="bench", data_dir=data_dir, image_size=(image_size, image_size), global_batch_size=batch,
                      tasks=TASKS, landmark_scheme="mtfl5", augment=AugmentConfig(), shuffle_buffer=256, repeat=True,
                      seed=0)


def bench_pipeline(cfg: DataConfig, batches: int) -> float:
    """Steady-state examples/s of the training pipeline (after a warm-up)."""
    it = iter(build_dataset(cfg))
    for _ in range(5):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * cfg.global_batch_size / (time.perf_counter() - t)


def bench_ifan_step(data_dir: str, batch: int, steps: int) -> tuple:
    """``(examples/s, input side)`` of an iFAN ``small`` training step."""
    import keras

    from keras_facemt.models import registry
    from keras_facemt.models.ifan.hybrid import ifan_loss_terms

    system = registry.get_system("ifan")
    config = system.config("small")
    model = system.build(config)
    terms = ifan_loss_terms(config)
    cfg = stream_config(data_dir, config.image_size, batch)
    cfg = dataclasses.replace(cfg, tasks=tuple(config.tasks))
    # A fixed batch keeps input work out of the measured step.
    data = next(iter(build_dataset(cfg)))
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(batch_data):
        with tf.GradientTape() as tape:
            pred = model({"image": batch_data["image"], "domain": batch_data["domain"]}, training=True)
            loss = 0.0
            for term in terms:
                w = batch_data[term.presence]
                per = term.fn(batch_data, pred[term.output])
                loss += term.weight * tf.reduce_sum(w * per) / tf.maximum(tf.reduce_sum(w), 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(3):
        step(data)
    t = time.perf_counter()
    for _ in range(steps):
        loss = step(data)
    float(loss)
    return steps * batch / (time.perf_counter() - t), config.image_size


def floor_check(ratio: float) -> tuple:
    """``(cell, ok)`` for the ratio pipeline / training step against ``FLOOR``."""
    ok = ratio >= FLOOR
    return f"{ratio:10.1f}x  ({'meets' if ok else 'BELOW'} the {FLOOR:.0f}x floor)", ok


def print_table(title: str, rows: list) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print("-" * (width + 40))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=512, help="records written to the bench shards")
    parser.add_argument("--batch", type=int, default=32, help="batch size of pipeline and training step")
    parser.add_argument("--batches", type=int, default=40, help="pipeline batches timed")
    parser.add_argument("--steps", type=int, default=15, help="training steps timed")
    parser.add_argument("--renders", type=int, default=200, help="SynthFace renders timed")
    args = parser.parse_args(argv)

    print_table("Machine", machine_info())
    tmp = tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        data_dir = os.path.join(tmp, "shards")
        write_shards(data_dir, args.examples)
        renders = bench_synthface(args.renders)
        step_rate, model_size = bench_ifan_step(data_dir, args.batch, args.steps)
        rows = [("SynthFace renders/s (128x128 crop)", f"{renders:10.1f}")]
        rates = {}
        for size in sorted({model_size, 128}):
            rates[size] = bench_pipeline(stream_config(data_dir, size, args.batch), args.batches)
            rows.append((f"pipeline examples/s (128x128 shards -> {size}x{size}, augmented)", f"{rates[size]:10.1f}"))
        rows.append((f"iFAN small training step examples/s ({model_size}x{model_size}, batch {args.batch})",
                     f"{step_rate:10.1f}"))
        cell, ok = floor_check(rates[model_size] / step_rate)
        rows.append((f"ratio pipeline / step (floor {FLOOR:.0f}x)", cell))
        rows.append(("shard content", "SynthFace"))
        print_table(f"Input pipeline (batch {args.batch}, {args.examples} records, 4 shards)", rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
