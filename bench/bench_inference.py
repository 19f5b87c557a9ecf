"""Inference benchmark: every deployment format of a system, against this machine's matmul peak.

For each system/preset and format (Keras eager, Keras compiled with XLA, SavedModel,
TFLite float32/float16/int8, ONNX Runtime) and each thread count (1 and 2): latency
at batch 1 and throughput at batch 32, the model's GFLOPs per image (TF profiler on
the serving graph), the achieved GFLOP/s and its fraction of the machine's measured
float32 matmul peak at the same thread count (measured here, in the same process
configuration). Every thread count runs in its own process, because TensorFlow's
thread pools are fixed at start-up.

Floor checked at the end: the best CPU format reaches at least 25% of the measured
matmul GFLOP/s on the iFAN ``paper`` preset at batch 32. The script exits 1 when the
floor is missed, when any requested format could not be built or run (an error row),
or when the floor preset was requested and nothing measured it; a run whose
``--presets`` leave out ``paper`` says the floor was not judged.

Usage::

    python bench/bench_inference.py                       # ifan small + paper, threads 1 and 2
    python bench/bench_inference.py --presets small --threads 1 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

FORMATS = ("keras_eager", "keras_xla", "saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")
FLOOR_FRACTION = 0.25


def machine_info() -> dict:
    import numpy as np
    import tensorflow as tf

    from keras_facemt.machine import cpu_model, load_average, package_versions

    cpu = cpu_model()
    versions = {"tensorflow": tf.__version__, "numpy": np.__version__,
                **package_versions(("keras", "onnxruntime", "ai_edge_litert", "tf2onnx"))}
    load = load_average()
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1min": round(load, 2),
        **versions,
    }


def _timeit(fn, seconds: float, min_runs: int = 3) -> float:
    """Median wall time of ``fn()`` over at least ``min_runs`` runs / ``seconds``."""
    import numpy as np

    fn()  # warm-up (tracing, allocation)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return float(np.median(times))


def matmul_peak(seconds: float) -> float:
    """Float32 GFLOP/s of a large square matmul under the process's thread setting."""
    import tensorflow as tf

    n = 1024
    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    best = 0.0
    for _ in range(3):
        t = _timeit(lambda: mm().numpy(), seconds / 3)
        best = max(best, 2 * n**3 / t / 1e9)
    return best


def model_gflops(model) -> float:
    """GFLOPs of one image through the model's inference graph (TF profiler float-op count)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = {k: tf.TensorSpec((1,) + tuple(v.shape[1:]), v.dtype) for k, v in model.input.items()}
    fn = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(specs)
    frozen = convert_variables_to_constants_v2(fn)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=opts
    )
    return info.total_float_ops / 1e9


def _inputs(model, batch: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for k, v in model.input.items():
        shape = (batch,) + tuple(v.shape[1:])
        out[k] = rng.uniform(0, 1, shape).astype("float32") if k == "image" else np.zeros(shape, "int32")
    return out


def worker(args) -> dict:
    """Runs in a fresh process pinned to ``args.threads`` threads; returns the results as a dict."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_facemt.models.registry import build_model
    from keras_facemt.serving.onnx_export import OnnxRunner, export_onnx
    from keras_facemt.serving.saved_model import SavedModelRunner, export_saved_model
    from keras_facemt.serving.tflite import TFLiteRunner, convert_tflite, representative_samples

    result = {"threads": args.threads, "matmul_gflops": matmul_peak(args.seconds), "rows": []}
    work = tempfile.mkdtemp(prefix="facemt-bench-")
    for preset in args.presets:
        model = build_model(args.system, preset)
        gflops = model_gflops(model)
        sm_dir = os.path.join(work, preset, "saved_model", "1")
        export_saved_model(model, sm_dir)
        sizes = (1, args.batch)
        feeds = {b: _inputs(model, b) for b in sizes}
        runners = {}
        for fmt in args.formats:
            try:
                if fmt == "keras_eager":
                    runners[fmt] = lambda x, m=model: m(x, training=False)
                elif fmt == "keras_xla":
                    runners[fmt] = tf.function(lambda x, m=model: m(x, training=False), jit_compile=True)
                elif fmt == "saved_model":
                    runners[fmt] = SavedModelRunner(sm_dir)
                elif fmt.startswith("tflite_"):
                    quant = fmt.split("_", 1)[1]
                    samples = (
                        representative_samples([_inputs(model, 16, seed=1)], 16, "domain" in model.input)
                        if quant == "int8"
                        else None
                    )
                    path = os.path.join(work, preset, f"{fmt}.tflite")
                    with open(path, "wb") as f:
                        f.write(convert_tflite(sm_dir, quant, samples))
                    runners[fmt] = TFLiteRunner(path, num_threads=args.threads)
                elif fmt == "onnx":
                    path = export_onnx(sm_dir, os.path.join(work, preset, "model.onnx"))
                    runners[fmt] = OnnxRunner(path, num_threads=args.threads)
            except Exception as e:  # reported as an error row, which fails the run at the end
                result["rows"].append({"preset": preset, "format": fmt, "error": str(e).splitlines()[0][:120]})
        for fmt, run in runners.items():
            row = {"preset": preset, "format": fmt, "gflops_per_image": gflops}
            try:

                def call(b, run=run, feeds=feeds):
                    out = run(feeds[b])
                    for v in out.values() if isinstance(out, dict) else [out]:
                        np.asarray(v)

                row["latency_ms_b1"] = _timeit(lambda: call(1), args.seconds) * 1e3
                t = _timeit(lambda: call(args.batch), args.seconds)
                row["images_per_s"] = args.batch / t
                row["achieved_gflops"] = gflops * row["images_per_s"]
                row["fraction_of_peak"] = row["achieved_gflops"] / result["matmul_gflops"]
            except Exception as e:
                row["error"] = str(e).splitlines()[0][:120]
            result["rows"].append(row)
    return result


def table(info: dict, results: list, batch: int) -> str:
    lines = [
        "## Inference benchmark (bench/bench_inference.py)",
        "",
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores, {info['platform']}, "
        f"load average {info['load_avg_1min']} at start; Python {info['python']}, TF {info['tensorflow']}, "
        f"Keras {info['keras']}, onnxruntime {info['onnxruntime']}, ai-edge-litert {info['ai_edge_litert']}.",
        "",
        (
            "Measured float32 matmul peak (1024x1024, TF): "
            + ", ".join(f"{r['threads']} thread(s): {r['matmul_gflops']:.1f} GFLOP/s" for r in results)
        ),
        "",
        (
            f"| preset | format | threads | GFLOPs/img | latency b=1 (ms) | images/s b={batch} | GFLOP/s b={batch} "
            "| % of matmul peak |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r["rows"]:
            if "error" in row:
                lines.append(
                    f"| {row['preset']} | {row['format']} | {r['threads']} | - | - | - | - | error: {row['error']} |"
                )
                continue
            lines.append(
                f"| {row['preset']} | {row['format']} | {r['threads']} | {row['gflops_per_image']:.3f} | "
                f"{row['latency_ms_b1']:.1f} | {row['images_per_s']:.1f} | {row['achieved_gflops']:.1f} | "
                f"{100 * row['fraction_of_peak']:.0f}% |"
            )
    return "\n".join(lines)


def _best(results: list, preset: str, keep) -> tuple:
    best = None
    for r in results:
        for row in r["rows"]:
            measured = row.get("preset") == preset and "fraction_of_peak" in row and keep(row["format"])
            if measured and (best is None or row["fraction_of_peak"] > best[0]):
                best = (row["fraction_of_peak"], row["format"], r["threads"])
    return best


def floor_check(results: list, preset: str = "paper", requested: bool = True) -> tuple:
    """``(line, ok)``. The floor is judged on the float formats: the peak is a float32
    matmul, so int8's fraction (integer arithmetic against a float peak) is reported
    beside it, not used. Any error row makes ``ok`` False: a format that failed is a
    number this run did not measure."""
    errors = [f"{row['preset']}/{row['format']}/{r['threads']}t" for r in results for row in r["rows"]
              if "error" in row]
    best = _best(results, preset, lambda fmt: fmt != "tflite_int8")
    if best is None:
        if requested:
            line = f"Floor (>= {FLOOR_FRACTION:.0%} of matmul peak on {preset} at batch 32): FAIL -- not measured."
        else:
            line = f"Floor (iFAN {preset}): not judged, --presets does not include {preset}."
        ok = not requested
    else:
        ok = best[0] >= FLOOR_FRACTION
        line = (
            f"Floor (best CPU float format >= {FLOOR_FRACTION:.0%} of the float32 matmul peak on iFAN {preset} "
            f"at batch 32): {'PASS' if ok else 'FAIL'} -- best {best[1]} with {best[2]} thread(s) at {best[0]:.0%}."
        )
        int8 = _best(results, preset, lambda fmt: fmt == "tflite_int8")
        if int8 is not None:
            line += f" (tflite_int8: {int8[0]:.0%} with {int8[2]} thread(s), int8 operations against the float peak.)"
    if errors:
        line += f" FAIL -- {len(errors)} row(s) not measured (error): {', '.join(errors)}."
    return line, ok and not errors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", default="ifan")
    p.add_argument("--presets", type=lambda s: s.split(","), default=["small", "paper"])
    p.add_argument("--formats", type=lambda s: s.split(","), default=list(FORMATS))
    p.add_argument("--threads", type=lambda s: [int(t) for t in s.split(",")], default=[1, 2])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0, help="timing budget per measurement")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown:
        p.error(f"unknown formats {unknown}; choose from {list(FORMATS)}")
    if args.worker:
        args.threads = args.threads[0]
        print(json.dumps(worker(args)))
        return 0
    info = machine_info()
    results = []
    for threads in args.threads:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            "--system",
            args.system,
            "--presets",
            ",".join(args.presets),
            "--formats",
            ",".join(args.formats),
            "--threads",
            str(threads),
            "--batch",
            str(args.batch),
            "--seconds",
            str(args.seconds),
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads))
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(table(info, results, args.batch))
    print()
    line, ok = floor_check(results, "paper", requested="paper" in args.presets)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
