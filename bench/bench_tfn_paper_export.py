"""TFN ``paper`` preset: does its deployable graph fit the 2 GB format limits?

FlatBuffers (TFLite) and protobuf (ONNX without external data) address at most 2 GB.
The paper preset has 378,596,004 parameters (``tests/test_tfn_model.py`` pins it),
1.51 GB of float32 weights. This script builds the preset with untrained weights (file
sizes do not depend on the values), writes the deployable graph (RPN, proposals, both
NMS passes, gathered ROI crops, all subnets) as a SavedModel, converts it to TFLite
float32 and to ONNX, loads each file in its runtime (ai-edge-litert, onnxruntime),
runs it on one image and compares the outputs with Keras (detections matched by box,
see ``_parity``), and prints a table: file size, headroom under 2 GiB, conversion
time, parity, peak memory.

Measured on the 24 GiB, 2-core CPU machine: both formats in one run peak at about
18 GB and take about 4.5 minutes. tf2onnx's own freezing went past 24 GB on this graph;
``serving.onnx_export`` lifts the weights out first (``lift_weights``, automatic above
512 MiB of variables).

Usage::

    python bench/bench_tfn_paper_export.py [--work DIR] [--out report.json]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

LIMIT_BYTES = 2 ** 31  # 2 GiB: FlatBuffer offsets and protobuf messages are 32-bit signed


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _parity(reference, outputs, tol: float = 1e-4):
    """``(worst relative difference, detections matched, detections)`` of one image's outputs.

    Untrained weights score many proposals alike, so a last-bit difference between
    runtimes can flip a near-tie in NMS and shift every padded row after it. Detections
    are therefore matched by box (each reference box to the runtime box nearest in
    L-inf, a match when within ``tol``) and the per-face outputs compared on matched
    rows; the other outputs are compared as they are.
    """
    import numpy as np

    ref_boxes = np.asarray(reference["boxes"], np.float64)[0]
    got_boxes = np.asarray(outputs["boxes"], np.float64).reshape(-1, 4)
    n = int(np.asarray(reference["num_detections"]).reshape(-1)[0])
    m = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    pairs = []
    for i in range(n):
        dist = np.abs(got_boxes[:m] - ref_boxes[i]).max(axis=-1) if m else np.array([np.inf])
        j = int(np.argmin(dist))
        if dist[j] <= tol:
            pairs.append((i, j))
    rows = np.array([i for i, _ in pairs], int), np.array([j for _, j in pairs], int)
    worst = 0.0
    for key, ref in reference.items():
        ref = np.asarray(ref, np.float64)
        got = np.asarray(outputs[key], np.float64).reshape(ref.shape)
        if ref.ndim >= 2 and ref.shape[1] == ref_boxes.shape[0]:  # one row per detection
            ref, got = ref[0][rows[0]], got[0][rows[1]]
        elif key == "num_detections":
            continue  # reported as the matched count
        worst = max(worst, float(np.abs(got - ref).max(initial=0.0)) / max(float(np.abs(ref).max(initial=0.0)), 1e-6))
    return worst, len(pairs), n


def measure(work: str, formats=("tflite", "onnx"), log=print) -> dict:
    import numpy as np

    from keras_facemt.models import registry
    from keras_facemt.serving import signatures as sig
    from keras_facemt.serving.onnx_export import OnnxRunner, export_onnx
    from keras_facemt.serving.saved_model import export_saved_model
    from keras_facemt.serving.tflite import TFLiteRunner, convert_tflite

    import keras

    system = registry.get_system("tfn")
    cfg = system.config("paper")
    keras.utils.set_random_seed(0)
    t = time.time()
    model = system.build(cfg, "paper")
    served = system.serving_model(model, cfg, "paper")
    rows, info = [], {"params": int(model.count_params()), "image_size": cfg.image_size}
    log(f"built tfn paper ({info['params']:,} parameters) in {time.time() - t:.0f}s")
    image = np.random.default_rng(0).random((1, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
    names = sig.output_name_map(list(served.output))
    reference = {names[k]: np.asarray(v) for k, v in served({"image": image}, training=False).items() if k in names}
    sm_dir = os.path.join(work, "saved_model", "1")
    t = time.time()
    export_saved_model(served, sm_dir)
    sm_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(sm_dir) for f in fs)
    rows.append({"format": "SavedModel", "bytes": sm_bytes, "seconds": time.time() - t, "parity": None,
                 "limit": "none (variables stored beside the graph)"})
    log(f"SavedModel {sm_bytes / 1e9:.2f} GB")
    del model, served
    for fmt in formats:
        t = time.time()
        row = {"format": {"tflite": "TFLite float32", "onnx": "ONNX"}[fmt], "limit": "2 GiB"}
        try:
            if fmt == "tflite":
                path = os.path.join(work, "model_float32.tflite")
                with open(path, "wb") as f:
                    f.write(convert_tflite(sm_dir, "float32"))
                row["seconds"] = time.time() - t
                out = TFLiteRunner(path)({sig.IMAGE: image})
            else:
                path = export_onnx(sm_dir, os.path.join(work, "model.onnx"))
                row["seconds"] = time.time() - t
                out = OnnxRunner(path)({sig.IMAGE: image})
            row["bytes"] = os.path.getsize(path)
            row["parity"], row["matched"], row["detections"] = _parity(reference, out)
        except Exception as e:  # a converter or runtime that cannot hold the model is the finding
            row.update(seconds=time.time() - t, bytes=None, parity=None, error=f"{type(e).__name__}: {str(e)[:300]}")
        rows.append(row)
        log(f"{row['format']}: {row.get('bytes')} bytes in {row['seconds']:.0f}s, max relative difference "
            f"{row.get('parity')} over {row.get('matched')} of {row.get('detections')} detections matched by box, "
            f"{row.get('error', 'ok')}")
    info["peak_memory_gb"] = _peak_gb()
    return {"rows": rows, **info}


def table(result: dict, machine: dict) -> str:
    lines = [f"TFN `paper` preset ({result['params']:,} parameters, {result['image_size']}x{result['image_size']} "
             f"input), deployable graph, untrained weights. Machine: {machine.get('cpu', '?')}, "
             f"{machine.get('usable_cores', '?')} cores, load {machine.get('load_average_1min')}; peak memory {result['peak_memory_gb']:.1f} GB.", "",
             "| format | file | headroom under 2 GiB | conversion (s) | detections matched by box | max relative "
             "difference to Keras on them, 1 image |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        size = "-" if r.get("bytes") is None else f"{r['bytes'] / 1e9:.3f} GB"
        head = "-" if r.get("bytes") is None or r["limit"] != "2 GiB" else f"{(LIMIT_BYTES - r['bytes']) / 1e9:.3f} GB"
        parity = r.get("error") or ("-" if r.get("parity") is None else f"{r['parity']:.1e}")
        matched = f"{r['matched']} of {r['detections']}" if r.get("detections") is not None else "-"
        lines.append(f"| {r['format']} | {size} | {head} | {r['seconds']:.0f} | {matched} | {parity} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one, removed)")
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    parser.add_argument("--formats", default="tflite,onnx", help="comma list from tflite,onnx")
    args = parser.parse_args(argv)
    from keras_facemt.machine import machine_info

    machine = machine_info()
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        result = measure(work, [f for f in args.formats.split(",") if f])
    print(table(result, machine))
    if args.out:
        from keras_facemt.io import write_json_atomic

        write_json_atomic(args.out, {"machine": machine, **result})
    over = [r["format"] for r in result["rows"] if r.get("bytes") and r["limit"] == "2 GiB" and r["bytes"] >= LIMIT_BYTES]
    failed = [r["format"] for r in result["rows"] if r.get("error")]
    return 1 if over or failed else 0


if __name__ == "__main__":
    sys.exit(main())
