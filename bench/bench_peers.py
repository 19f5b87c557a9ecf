"""keras-facemt next to dlib on the same photos: per-image latency, images/s, peak memory.

Rows, each measured in its own process (so its peak resident memory is its own) on
the same synthetic 640x480 scenes with 1, 5 and 20 SynthFace faces:

* ``dlib``: the classic pipeline of ``face_recognition`` (models from
  ``face_recognition_models``): HOG detector over the photo (upsampled once, as
  ``face_recognition.face_locations`` does), then per face the 5-point shape
  predictor and the 128-D ResNet descriptor. The per-face stages run on the
  scenes' true face boxes, so every face is paid for whatever HOG finds on drawn
  faces (its detection count is shown);
* ``uniface f32`` / ``uniface int8``: Uniface ``small`` alone (boxes, 5 points and
  an embedding per face in one network), TFLite float32 and full-integer int8,
  320x320 letterboxed input, ``max_detections`` 20, 2 threads;
* ``pipeline f32`` / ``pipeline int8``: ``inference.pipeline.FacePipeline``: that
  Uniface + iFAN ``small`` (parsing, 5 points, emotion) + MTFR ``small`` (embedding,
  attributes), all three TFLite float32 or all three int8, 2 threads, every face
  aligned, analysed and mapped back into the photo.

The keras-facemt models are built from their presets with untrained weights and
exported (TFLite, through ``serving.exporter``; cached under
``$FACEMT_CACHE_DIR/bench_peers``). Latency does not depend on the weights, except
through how many detections survive: the detector's score threshold is 0, so it
always returns its 20 candidates (NMS at full load), and the pipeline analyses the
top N (``max_faces = N``), as many faces as the scene holds.

Latency is the median over ``--repeats`` passes of each image, one image at a time,
after one warm-up pass. Floors (same run): Uniface (best of f32/int8) >= 5x faster
per image than dlib at 1 face and >= 50x at 20 faces; the pipeline (best of f32/int8)
>= 5x faster than dlib at 20 faces. Exit status 1 on a missed floor or an unmeasured row. Without dlib
(``pip install -e .[peers]``) the script says how to install it and prints the
project's own rows, exit status 0.

Usage::

    python bench/bench_peers.py [--repeats 5] [--images 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

FACE_COUNTS = (1, 5, 20)
WIDTH, HEIGHT = 640, 480
DETECTOR_SIZE = 320
THREADS = 2
ROWS = ("dlib", "uniface_float32", "uniface_int8", "pipeline_float32", "pipeline_int8")
FLOORS = (("uniface", 1, 5.0), ("uniface", 20, 50.0), ("pipeline", 20, 5.0))
INSTALL = "pip install -e .[peers]   (dlib-bin and face-recognition-models)"


# ----------------------------------------------------------------------------- scenes
def scenes(n_faces: int, count: int, seed: int = 0):
    """``count`` 640x480 uint8 RGB photos of ``n_faces`` SynthFace faces on a grid over
    an outdoor background, and their true face boxes ``[n, 4]`` (pixels)."""
    import cv2

    from keras_facemt.data.synthetic import SynthFace

    cols = int(np.ceil(np.sqrt(n_faces * WIDTH / HEIGHT)))
    rows = int(np.ceil(n_faces / cols))
    cell = int(min(WIDTH / cols, HEIGHT / rows))
    side = min(cell - 4, 300)
    synth = SynthFace(seed=seed, domain="outdoor", image_size=side)
    photos, boxes = [], []
    for b in range(count):
        photo = cv2.resize(SynthFace(seed=seed + 1, domain="outdoor", image_size=160).render_scene(b, 1)[0],
                           (WIDTH, HEIGHT))
        x_pad, y_pad = (WIDTH - cols * cell) // 2, (HEIGHT - rows * cell) // 2
        found = []
        for k in range(n_faces):
            rgb, lab = synth.render_crop(b * n_faces + k)
            r, c = divmod(k, cols)
            x0, y0 = x_pad + c * cell + (cell - side) // 2, y_pad + r * cell + (cell - side) // 2
            photo[y0:y0 + side, x0:x0 + side] = rgb
            found.append(np.asarray(lab["bbox"]) * side + np.array([x0, y0, x0, y0]))
        photos.append(photo)
        boxes.append(np.asarray(found, np.float32))
    return photos, boxes


# ----------------------------------------------------------------------------- exports
def exports(cache_dir: str, log=print) -> dict:
    """Export directories (TFLite + manifest) of the three models, built once and reused.

    The serving pieces of ``serving.exporter`` are used (SavedModel signatures, the
    TFLite converter with int8 calibration, the manifest), without its parity
    verification: untrained weights give near-tied detection scores whose order
    differs between runtimes. Parity of the pipeline across runtimes is
    ``tests/test_pipeline_runtimes.py``'s subject.
    """
    import dataclasses
    import shutil

    import keras

    from keras_facemt.data.letterbox import resize_image
    from keras_facemt.models import registry
    from keras_facemt.models.model_info import serving_spec_of
    from keras_facemt.serving import signatures as sig
    from keras_facemt.serving.exporter import _record_of
    from keras_facemt.serving.manifest import build_manifest, write_manifest
    from keras_facemt.serving.saved_model import export_saved_model
    from keras_facemt.serving.tflite import convert_tflite, representative_samples

    root = os.path.join(cache_dir, "bench_peers")
    os.makedirs(root, exist_ok=True)
    out = {}
    for name in ("uniface", "ifan", "mtfr"):
        path = out[name] = os.path.join(root, name)
        if os.path.exists(os.path.join(path, "manifest.json")):
            continue
        log(f"exporting {name} small (once, into {path})")
        shutil.rmtree(path, ignore_errors=True)
        keras.utils.set_random_seed(0)
        system = registry.get_system(name)
        cfg = system.config("small")
        if name == "uniface":
            cfg = dataclasses.replace(cfg, image_size=DETECTOR_SIZE, max_detections=20, score_threshold=0.0)
        model = system.serving_model(system.build(cfg, "small"), cfg, "small")
        io = sig.ModelIO.from_model(model)
        h, w = io.image_size
        photos = scenes(5, 8, seed=11)[0]  # calibration on photos, as the detector sees them
        images = np.stack([resize_image(p, (h, w), name == "uniface")[0] for p in photos])
        sm_dir = os.path.join(path, "saved_model")
        export_saved_model(model, sm_dir)
        names = sig.output_name_map(list(model.output.keys()))
        artifacts = {}
        os.makedirs(os.path.join(path, "tflite"))
        for q in ("float32", "int8"):
            samples = representative_samples([{"image": images, "domain": np.zeros(len(images), "int32")}], 8,
                                              io.has_domain) if q == "int8" else None
            rel = os.path.join("tflite", f"model_{q}.tflite")
            with open(os.path.join(path, rel), "wb") as f:
                f.write(convert_tflite(sm_dir, q, samples))
            artifacts[f"tflite_{q}"] = {"format": "tflite", "path": rel, "quantization": q, "io_dtype": "float32",
                                        "signature": sig.SERVING_DEFAULT}
        shutil.rmtree(sm_dir)
        write_manifest(path, build_manifest(io, names, artifacts, None, _record_of(model),
                                            {"note": "bench export, not verified"}, serving_spec_of(model)))
    return out


# ----------------------------------------------------------------------------- rows
def _peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would carry the
    parent's peak across ``exec`` on Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time(fn, photos, repeats: int) -> float:
    """Median seconds per image over ``repeats`` passes (after one warm-up pass)."""
    for p in photos:
        fn(p)
    times = []
    for _ in range(repeats):
        for p in photos:
            t = time.perf_counter()
            fn(p)
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_row(row: str, data_path: str, export_dirs: dict, repeats: int) -> dict:
    """Measures one row on every face count; returns figures (ms, images/s, MB)."""
    data = np.load(data_path)
    result = {"row": row, "faces": {}}
    if row == "dlib":
        import dlib
        import face_recognition_models as frm

        hog = dlib.get_frontal_face_detector()
        shapes = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        for n in FACE_COUNTS:
            photos, boxes = list(data[f"photos_{n}"]), list(data[f"boxes_{n}"])
            rects = [[dlib.rectangle(*(int(round(v)) for v in b)) for b in bs] for bs in boxes]
            found = []

            def analyse(i):
                found.append(len(hog(photos[i], 1)))
                for r in rects[i]:
                    np.asarray(resnet.compute_face_descriptor(photos[i], shapes(photos[i], r)))

            seconds = _time(analyse, range(len(photos)), repeats)
            result["faces"][n] = {"ms": seconds * 1e3, "hog_found": float(np.mean(found))}
    elif row.startswith("uniface"):
        # The detector alone, as a deployment would run it: LiteRT and OpenCV, no TensorFlow.
        import cv2
        from ai_edge_litert.interpreter import Interpreter

        q = row.split("_")[1]
        with open(os.path.join(export_dirs["uniface"], "manifest.json")) as f:
            manifest = json.load(f)
        path = os.path.join(export_dirs["uniface"], manifest["artifacts"][f"tflite_{q}"]["path"])
        runner = Interpreter(model_path=path, num_threads=THREADS).get_signature_runner("serving_default")
        feed_domain = "domain" in runner.get_input_details()

        def detect(photo):
            scale = DETECTOR_SIZE / max(photo.shape[:2])
            h, w = round(photo.shape[0] * scale), round(photo.shape[1] * scale)
            x = np.zeros((1, DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
            x[0, :h, :w] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA) / 255.0
            feed = {"image": x, **({"domain": np.zeros(1, np.int32)} if feed_domain else {})}
            out = runner(**feed)
            k = int(out["num_detections"][0])
            return out["boxes"][0, :k] * np.array([DETECTOR_SIZE / scale] * 4), out["embeddings"][0, :k]

        for n in FACE_COUNTS:
            seconds = _time(detect, list(data[f"photos_{n}"]), repeats)
            result["faces"][n] = {"ms": seconds * 1e3}
    elif row.startswith("pipeline"):
        from keras_facemt.inference.pipeline import FacePipeline

        q = row.split("_")[1]
        tfl = lambda name: os.path.join(export_dirs[name], "tflite", f"model_{q}.tflite")  # noqa: E731
        for n in FACE_COUNTS:
            pipe = FacePipeline(tfl("uniface"), [tfl("ifan"), tfl("mtfr")], max_faces=n, num_threads=THREADS)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the detector's 20 candidates, n analysed: by design
                counts = []

                def analyse(photo):
                    faces = pipe([photo])[0]
                    counts.append(len(faces))

                seconds = _time(analyse, list(data[f"photos_{n}"]), repeats)
            assert min(counts) == n, counts
            result["faces"][n] = {"ms": seconds * 1e3}
    else:
        raise SystemExit(f"unknown row {row!r}")
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


# ----------------------------------------------------------------------------- table
def _measure(row, data_path, export_dirs, repeats):
    cmd = [sys.executable, os.path.abspath(__file__), "--row", row, "--data", data_path,
           "--exports", json.dumps(export_dirs), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {row}: failed ({tail})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=3, help="photos per face count")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--exports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:  # a worker process: one row, JSON on the last line
        print(json.dumps(run_row(args.row, args.data, json.loads(args.exports), args.repeats)))
        return 0

    from keras_facemt.machine import machine_info, package_versions

    info = machine_info()
    print("machine: " + " | ".join(f"{k} {v}" for k, v in info.items()))
    try:
        import importlib

        importlib.import_module("dlib")
        importlib.import_module("face_recognition_models")
        has_dlib = True
        print("versions: " + " | ".join(f"{k} {v}" for k, v in
                                         package_versions(["dlib", "face_recognition_models"]).items()))
    except ImportError:
        has_dlib = False
        print(f"dlib or face_recognition_models is not installed; the dlib row is skipped. Install: {INSTALL}")
    cache = os.environ.get("FACEMT_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "facemt_cache")
    export_dirs = exports(cache)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, "scenes.npz")
        arrays = {}
        for n in FACE_COUNTS:
            photos, boxes = scenes(n, args.images)
            arrays[f"photos_{n}"] = np.stack(photos)
            arrays[f"boxes_{n}"] = np.stack(boxes)
        np.savez(data_path, **arrays)
        rows = [r for r in ROWS if has_dlib or r != "dlib"]
        results = {}
        for row in rows:
            print(f"measuring {row} ...", flush=True)
            results[row] = _measure(row, data_path, export_dirs, args.repeats)
    return report(results, has_dlib, args)


def report(results: dict, has_dlib: bool, args) -> int:
    from keras_facemt.machine import load_average

    print(f"\n{WIDTH}x{HEIGHT} photos, {args.images} per face count, median of {args.repeats} passes, "
          f"one image at a time; load average (1 min) at the end {load_average():.2f}\n")
    header = f"{'row':<18}" + "".join(f"{f'{n} face(s) ms':>14}{'img/s':>8}" for n in FACE_COUNTS) + f"{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    unmeasured = []
    for row, res in results.items():
        if res is None:
            unmeasured.append(row)
            print(f"{row:<18}" + "   not measured")
            continue
        cells = ""
        for n in FACE_COUNTS:
            ms = res["faces"][str(n)]["ms"]
            cells += f"{ms:>14.1f}{1000.0 / ms:>8.1f}"
        print(f"{row:<18}{cells}{res['peak_rss_mb']:>9.0f}")
    if has_dlib and results.get("dlib"):
        hog = ", ".join(f"{n}: {results['dlib']['faces'][str(n)]['hog_found']:.1f}" for n in FACE_COUNTS)
        print(f"(dlib HOG finds on these drawn faces, per image: {hog}; its per-face stages ran on every true box)")
    status = 0
    if unmeasured:
        print(f"\nFAIL: rows not measured: {unmeasured}")
        status = 1
    if not has_dlib:
        print(f"\nno floors judged without dlib; install it: {INSTALL}")
        return status
    if results.get("dlib") is None:
        return 1
    print()
    for who, n, floor in FLOORS:
        dlib_ms = results["dlib"]["faces"][str(n)]["ms"]
        if who == "uniface":
            cands = [(r, results[r]["faces"][str(n)]["ms"]) for r in ("uniface_float32", "uniface_int8")
                     if results.get(r)]
        else:
            cands = [(r, results[r]["faces"][str(n)]["ms"]) for r in ("pipeline_float32", "pipeline_int8")
                     if results.get(r)]
        if not cands:
            status = 1
            continue
        name, ms = min(cands, key=lambda c: c[1])
        speedup = dlib_ms / ms
        ok = speedup >= floor
        status |= 0 if ok else 1
        print(f"{'PASS' if ok else 'FAIL'}  {name} at {n} face(s): {speedup:.1f}x faster than dlib "
              f"(floor {floor:.0f}x)")
    return status


if __name__ == "__main__":
    sys.exit(main())
