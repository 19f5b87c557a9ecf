"""Input-pipeline throughput against what one iFAN training step consumes.

Prints a table with machine information:

* SynthFace renders per second (``keras_facemt.data.synthetic.SynthFace.render``);
* pipeline examples per second reading 128x128 JPEG shards (landmarks, parsing and
  emotion labels) with training augmentation, at the iFAN ``small`` input size and
  at 128x128;
* examples per second one iFAN ``small`` training step consumes (forward, the
  masked iFAN loss terms, backward and an Adam update, batch of the same size);
* the ratio pipeline / training step (floor: 5x).

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

import numpy as np  # noqa: E402
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


def bench_synthface(n: int):
    """SynthFace crops rendered per second, or None if SynthFace is not available."""
    try:
        from keras_facemt.data.synthetic import SynthFace
    except ImportError as e:
        return None, f"keras_facemt.data.synthetic not importable ({e})"
    synth = SynthFace(seed=0, image_size=128)
    synth.render(0)
    t = time.perf_counter()
    for i in range(1, n + 1):
        synth.render(i)
    return n / (time.perf_counter() - t), ""


def write_shards(out_dir: str, count: int) -> str:
    """128x128 crop shards carrying landmarks, parsing and emotion labels."""
    try:
        from keras_facemt.data.synthetic import write_synthetic
    except ImportError:
        write_synthetic = None
    if write_synthetic is not None:
        write_synthetic(out_dir, kind="crops", tasks=TASKS, count=count, shards=4, seed=0, image_size=128,
                        splits=(("train", 1.0),), landmark_scheme="mtfl5")
        return "SynthFace"
    from keras_facemt.data.codec import FaceRecord, encode_image, encode_label_map
    from keras_facemt.data.shards import ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(out_dir, num_shards=4) as w:
        for i in range(count):
            # Smooth content so JPEG sizes resemble photographs, not noise.
            small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            img = np.kron(small, np.ones((8, 8, 1), np.uint8))
            w.write(FaceRecord(
                image=encode_image(img), height=128, width=128, source_id=f"bench_{i:05d}.jpg", dataset="bench",
                bboxes=np.array([[0.1, 0.1, 0.9, 0.9]], np.float32),
                parsing=encode_label_map(np.kron(rng.integers(0, 11, (16, 16)), np.ones((8, 8), np.int64))),
                landmark_scheme="mtfl5", landmarks=rng.uniform(0.2, 0.8, (1, 5, 2)).astype(np.float32),
                attributes={"emotion": np.array([i % 7])},
            ))
    return "random blocks (SynthFace unavailable)"


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


def bench_ifan_step(data_dir: str, batch: int, steps: int):
    """Examples/s of an iFAN ``small`` training step, or None with the reason."""
    try:
        import keras

        from keras_facemt.models import registry
        from keras_facemt.models.ifan.hybrid import ifan_loss_terms
    except ImportError as e:
        return None, None, f"iFAN not available yet ({e})"
    try:
        system = registry.get_system("ifan")
        config = system.config("small")
        model = system.build(config)
    except (ImportError, AttributeError) as e:
        return None, None, f"iFAN small preset not buildable yet ({e})"
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
    return steps * batch / (time.perf_counter() - t), config.image_size, ""


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
        source = write_shards(data_dir, args.examples)
        renders, note = bench_synthface(args.renders)
        step_rate, model_size, step_note = bench_ifan_step(data_dir, args.batch, args.steps)
        feed_size = model_size or 64
        rows = [("SynthFace renders/s (128x128 crop)", f"{renders:10.1f}" if renders else f"n/a: {note}")]
        rates = {}
        for size in sorted({feed_size, 128}):
            rates[size] = bench_pipeline(stream_config(data_dir, size, args.batch), args.batches)
            rows.append((f"pipeline examples/s (128x128 shards -> {size}x{size}, augmented)", f"{rates[size]:10.1f}"))
        if step_rate is None:
            rows.append(("iFAN small training step examples/s", f"n/a: {step_note}"))
            rows.append(("ratio pipeline / step (floor 5x)", "n/a until the iFAN small preset exists"))
        else:
            rows.append((f"iFAN small training step examples/s ({model_size}x{model_size}, batch {args.batch})",
                         f"{step_rate:10.1f}"))
            ratio = rates[feed_size] / step_rate
            verdict = "meets" if ratio >= FLOOR else "BELOW"
            rows.append(("ratio pipeline / step (floor 5x)", f"{ratio:10.1f}x  ({verdict} the {FLOOR:.0f}x floor)"))
        rows.append(("shard content", source))
        print_table(f"Input pipeline (batch {args.batch}, {args.examples} records, 4 shards)", rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
