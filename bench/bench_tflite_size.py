"""TFLite file sizes: where the bytes of the float32 and int8 files go.

For each iFAN preset and interaction count (the preset's ITER, and ITER=0, the plain
network without the feedback loop) the script exports the untrained model's
SavedModel, converts it to TFLite float32 and full-integer int8 (calibrated on
SynthFace crops from the configured domains; a size does not depend on the
weights' values), and splits each file into constant buffers (weights), tensor
names, quantization parameters and the remaining graph structure (tensor and
operator tables, signatures, alignment). It also gives the ratio with tensor names
stripped from both files (``serving.tflite.strip_tensor_names``) and the structural
bound of the floor:

    int8 <= float32 / 3.5  needs  int8 non-weight bytes <= float32 / 3.5 - int8 weight bytes

while an int8 file of the same graph holds every tensor and operator of the float32
file (plus quantization parameters), so its non-weight bytes are at least the
float32 file's. When the budget is below the float32 file's own non-weight bytes, no
int8 encoding of that graph reaches 1/3.5.

Floor checked at the end, on weight bytes: iFAN ``small`` (its configured ITER), the
int8 file's constant buffers at most 1/3.5 of the float32 file's. The whole-file ratio
is printed beside it and not judged: the graph structure above is what int8 cannot
shrink (README, "TFLite file size"). The script exits 1 when the floor is missed or
its preset was requested and not measured; a run whose ``--presets`` leave out the
floor preset (or ``--iterations`` its configured ITER) says that the floor was not judged.

Usage::

    python bench/bench_tflite_size.py                           # small + paper, ITER as configured and 0
    python bench/bench_tflite_size.py --presets small --iterations preset
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

FLOOR_RATIO = 3.5
DOMAINS = ("studio", "webcam", "outdoor")


def machine_info() -> dict:
    from keras_facemt.machine import machine_info as base_info
    from keras_facemt.machine import package_versions

    return {**base_info(), **package_versions(("keras", "ai_edge_litert"))}


def calibration_samples(image_size: int, num_domains: int, count: int, takes_domain: bool):
    """``count`` SynthFace crops, cycling through the model's BN domains."""
    import numpy as np

    from keras_facemt.data.synthetic import SynthFace
    from keras_facemt.serving.tflite import representative_samples

    renderers = [SynthFace(seed=7, domain=DOMAINS[d % len(DOMAINS)], image_size=image_size)
                 for d in range(num_domains)]
    domains = np.arange(count, dtype=np.int32) % num_domains
    images = np.stack([renderers[d].render(i) for i, d in enumerate(domains)]).astype(np.float32) / 255.0
    return representative_samples([{"image": images, "domain": domains}], count, takes_domain)


def measure(preset: str, iterations, work: str, samples_per_domain: int = 8) -> dict:
    """Sizes of one iFAN configuration's float32 and int8 TFLite files (``iterations=None``: the preset's)."""
    import keras

    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.saved_model import export_saved_model
    from keras_facemt.serving.tflite import convert_tflite, size_breakdown, strip_tensor_names

    spec = get_system("ifan")
    config = spec.config(preset) if iterations is None else spec.config(preset, iterations=iterations)
    keras.utils.set_random_seed(0)
    model = spec.build(config)
    size = int(model.input["image"].shape[1])
    num_domains = int(getattr(config, "bn_domains", 1))
    sm_dir = os.path.join(work, f"{preset}_iter{config.iterations}", "1")
    export_saved_model(model, sm_dir)
    samples = calibration_samples(size, num_domains, samples_per_domain * num_domains, "domain" in model.input)
    row = {"preset": preset, "iterations": int(config.iterations), "parameters": int(model.count_params())}
    for quant in ("float32", "int8"):
        flat = convert_tflite(sm_dir, quant, samples if quant == "int8" else None)
        row[quant] = size_breakdown(flat)
        row[quant]["stripped_bytes"] = len(strip_tensor_names(flat))
    return row


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f}"


def non_weight_bytes(row: dict) -> tuple:
    """``(budget, float32)``: the bytes a 1/FLOOR_RATIO int8 file may spend beside its
    weights, and what the float32 file of the same graph spends beside its own."""
    f, q = row["float32"], row["int8"]
    return f["total_bytes"] / FLOOR_RATIO - q["constant_bytes"], f["total_bytes"] - f["constant_bytes"]


def table(info: dict, rows: list) -> str:
    lines = [
        "## TFLite file sizes (bench/bench_tflite_size.py)",
        "",
        f"Machine: {info['cpu']}, {info['platform']}; Python {info['python']}, TF {info['tensorflow']} "
        f"(converter), Keras {info['keras']}, ai-edge-litert {info['ai_edge_litert']}. Sizes in KiB.",
        "",
        "| preset | ITER | params | ops f32/int8 | tensors f32/int8 | float32: total = weights + names + structure "
        "| int8: total = weights + names + quant + structure | weights ratio | file ratio | ratio, names stripped "
        f"| int8 non-weight budget for 1/{FLOOR_RATIO} | float32 non-weight |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, q = r["float32"], r["int8"]
        budget, float_non_weight = non_weight_bytes(r)
        lines.append(
            f"| {r['preset']} | {r['iterations']} | {r['parameters']:,} | {f['num_ops']}/{q['num_ops']} "
            f"| {f['num_tensors']}/{q['num_tensors']} "
            f"| {_kb(f['total_bytes'])} = {_kb(f['constant_bytes'])} + {_kb(f['name_bytes'])} + "
            f"{_kb(f['structure_bytes'])} "
            f"| {_kb(q['total_bytes'])} = {_kb(q['constant_bytes'])} + {_kb(q['name_bytes'])} + "
            f"{_kb(q['quantization_bytes'])} + {_kb(q['structure_bytes'])} "
            f"| {f['constant_bytes'] / q['constant_bytes']:.2f}x | {f['total_bytes'] / q['total_bytes']:.2f}x "
            f"| {f['stripped_bytes'] / q['stripped_bytes']:.2f}x "
            f"| {_kb(max(0, int(budget)))} | {_kb(float_non_weight)} |"
        )
    return "\n".join(lines)


def floor_check(rows: list, preset: str = "small", requested: bool = True) -> tuple:
    """``(line, ok)``: the floor judged on weight bytes; ``ok`` is False on a miss or a
    requested preset without a measured row."""
    row = next((r for r in rows if r["preset"] == preset and r.get("configured")), None)
    if row is None:
        if not requested:
            return f"Floor (iFAN {preset}): not judged, --presets does not include {preset}.", True
        return f"Floor (iFAN {preset}: int8 weights <= float32 weights / {FLOOR_RATIO}): FAIL -- not measured.", False
    f, q = row["float32"], row["int8"]
    weights = f["constant_bytes"] / q["constant_bytes"]
    ok = weights >= FLOOR_RATIO
    budget, float_non_weight = non_weight_bytes(row)
    line = (
        f"Floor (iFAN {preset}, ITER={row['iterations']}: TFLite int8 weight bytes <= float32 weight bytes / "
        f"{FLOOR_RATIO}, judged on weight bytes): {'PASS' if ok else 'FAIL'} -- weights {weights:.2f}x. "
        f"Whole file {f['total_bytes'] / q['total_bytes']:.2f}x, reported, not judged: a 1/{FLOOR_RATIO} int8 file "
        f"could spend {_kb(max(0, int(budget)))} KiB beyond its weights, while the float32 file of the same graph "
        f"spends {_kb(float_non_weight)} KiB on names and structure."
    )
    return line, ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["small", "paper"])
    p.add_argument(
        "--iterations",
        type=lambda s: s.split(","),
        default=["preset", "0"],
        help="comma list of ITER values; 'preset' is the preset's own",
    )
    p.add_argument("--floor-preset", default="small", help="preset the floor is judged on (default: small)")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        iterations = [None if i == "preset" else int(i) for i in args.iterations]
    except ValueError:
        p.error(f"--iterations takes integers or 'preset'. Received: {args.iterations}")
    info = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="facemt-size-") as work:
        for preset in args.presets:
            for it in iterations:
                row = measure(preset, it, work)
                row["configured"] = it is None
                rows.append(row)
    print(table(info, rows))
    print()
    requested = args.floor_preset in args.presets and None in iterations
    line, ok = floor_check(rows, args.floor_preset, requested=requested)
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
