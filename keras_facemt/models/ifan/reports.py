"""Reports of an iFAN run: ``results.json``, ``results.md``, ``curves.png``, ``predictions.png``.

``results`` is the dict ``ifan_eval`` builds:

* ``final[task]["iter_<i>"]``: the task's metrics at every interaction iteration on
  held-out data (parsing: per-class / Table-2 / Mouth-All / overall F-score;
  landmarks: NME, failure rate, per-point NME; emotion: accuracy, confusion matrix),
* ``baselines[task]``: trivial predictors (mean shape, majority class),
* ``history``: one entry per evaluation during training (stage, step, headline
  metric per task and iteration), the data of the paper's Fig. 7.

``results.md`` lays the numbers out as the paper's Tables 1-3. Plots are drawn with
OpenCV (no plotting library is a dependency). Every file is written to a temporary
name and moved into place.
"""

from __future__ import annotations

import math
from typing import List, Mapping, Sequence

import numpy as np

from keras_facemt.io import finite_json, write_bytes_atomic, write_json_atomic

# Headline metric of each kind of task: (key in the task's metrics, label, higher is better).
HEADLINES = {
    "parsing": ("overall", "overall F-score (%)", True),
    "landmarks": ("nme", "NME (%)", False),
}
ATTRIBUTE_HEADLINE = ("accuracy", "accuracy (%)", True)

_MTFL_COLUMNS = (("left_eye", "L.Eye"), ("right_eye", "R.Eye"), ("nose", "Nose"), ("mouth_left", "L.Mouth"),
                 ("mouth_right", "R.Mouth"))
_TABLE2_COLUMNS = (("eyes", "Eyes"), ("brows", "Brows"), ("nose", "Nose"), ("inner_mouth", "In mouth"),
                   ("upper_lip", "Upper Lip"), ("lower_lip", "Lower Lip"), ("mouth_all", "Mouth-All"),
                   ("face_skin", "Face Skin"), ("hair", "Hair"), ("background", "Background"))


def headline(task: str):
    """``(metric key, label, higher_is_better)`` of a task."""
    return HEADLINES.get(task, ATTRIBUTE_HEADLINE)


# ----------------------------------------------------------------------------- files
def _finite(obj):
    # Strict JSON has no NaN: an undefined score (a class that never occurs) is null.
    return finite_json(dict(obj) if isinstance(obj, Mapping) else obj)


def write_results_json(path: str, results: Mapping) -> str:
    write_json_atomic(path, _finite(results))
    return path


# ----------------------------------------------------------------------------- markdown
def _pct(v, digits=2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100.0 * float(v):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _iters(final_task: Mapping) -> List[str]:
    return sorted(final_task, key=lambda k: int(k.split("_")[-1]))


def landmark_table(results: Mapping, label: str) -> List[str]:
    """Table 1 layout: NME (%) per point and mean, plus failure rate (%)."""
    final = results["final"]["landmarks"]
    base = results["baselines"]["landmarks"]["mean_shape"]
    per_point = results.get("landmark_scheme", "mtfl5") == "mtfl5"
    cols = [c for _, c in _MTFL_COLUMNS] if per_point else []
    header = [""] + cols + ["Mean", "Failure rate (NME > 10%)"]

    def row(name, m):
        cells = [_pct(m["per_point_nme"].get(k)) for k, _ in _MTFL_COLUMNS] if per_point else []
        return [name] + cells + [_pct(m["nme"]), _pct(m["failure_rate"])]

    rows = [row("Mean shape (trivial baseline)", base)]
    rows += [row(f"{label} Iter{it.split('_')[-1]}", final[it]) for it in _iters(final)]
    return _table(header, rows)


def parsing_table(results: Mapping, label: str) -> List[str]:
    """Table 2 layout: F-score (%) per component, Mouth-All and overall."""
    final = results["final"]["parsing"]
    base = results["baselines"]["parsing"]
    header = [""] + [c for _, c in _TABLE2_COLUMNS] + ["Overall"]

    def row(name, m):
        return [name] + [_pct(m["table2"].get(k)) for k, _ in _TABLE2_COLUMNS] + [_pct(m["overall"])]

    rows = [row("All majority class (trivial baseline)", base["majority_class"])]
    if "prior_map" in base:
        rows.append(row("Per-pixel prior map (trivial baseline)", base["prior_map"]))
    rows += [row(f"{label} Iter{it.split('_')[-1]}", final[it]) for it in _iters(final)]
    return _table(header, rows)


def attribute_table(results: Mapping, task: str, label: str) -> List[str]:
    """Table 3 layout: accuracy (%), plus the last iteration's confusion matrix (Fig. 6)."""
    final = results["final"][task]
    base = results["baselines"][task]
    rows = [["Chance", _pct(base["chance"])], ["Majority class (trivial baseline)", _pct(base["majority"])]]
    rows += [[f"{label} Iter{it.split('_')[-1]}", _pct(final[it]["accuracy"])] for it in _iters(final)]
    lines = _table(["", "Accuracy (%)"], rows)
    last = final[_iters(final)[-1]]
    names = last.get("class_names") or [str(i) for i in range(len(last["confusion_matrix"]))]
    lines += ["", f"Confusion matrix of {label} Iter{_iters(final)[-1].split('_')[-1]} (rows: truth, columns: prediction):", ""]
    lines += _table(["truth \\ pred"] + list(names), [[n] + [str(v) for v in r] for n, r in zip(names, last["confusion_matrix"])])
    return lines


def history_table(results: Mapping) -> List[str]:
    """Headline metric of each task, at the last iteration available, after each training piece (Fig. 7)."""
    tasks = results["tasks"]
    header = ["phase", "step"] + [f"{t} {headline(t)[1]}" for t in tasks]
    rows = []
    for h in results.get("history", []):
        cells = []
        for t in tasks:
            per_iter = h["metrics"].get(t, {})
            cells.append(_pct(per_iter[_iters(per_iter)[-1]]) if per_iter else "-")
        rows.append([h["phase"], str(h["step"])] + cells)
    return _table(header, rows)


def results_markdown(results: Mapping) -> str:
    """``results.md``: the paper's Tables 1-3 on this run's held-out data."""
    tasks = results["tasks"]
    label = f"iFAN {len(tasks)}T"
    out = [f"# iFAN results: {results.get('experiment', '')}", ""]
    if results.get("description"):
        out += [results["description"], ""]
    out += [f"Tasks (stage-1 order, BN domain ids): {', '.join(f'{t} ({i})' for i, t in enumerate(tasks))}; "
            f"ITER={results['iterations']}. All numbers in % on held-out data.", ""]
    n = 1
    if "landmarks" in tasks:
        out += [f"## Table {n}: landmark NME (inter-ocular), {results.get('landmark_scheme', 'mtfl5')}", ""]
        out += landmark_table(results, label) + [""]
        n += 1
    if "parsing" in tasks:
        out += [f"## Table {n}: parsing F-score", ""] + parsing_table(results, label) + [""]
        n += 1
    for t in tasks:
        if t not in HEADLINES:
            out += [f"## Table {n}: {t} recognition", ""] + attribute_table(results, t, label) + [""]
            n += 1
    out += ["## Training stages (Fig. 7)", ""] + history_table(results) + [""]
    if results.get("headline"):
        out += ["## Headline (last iteration vs the strongest trivial baseline)", ""]
        out += _table(["Metric", "Split", "iFAN", "Baseline"],
                      [[h["metric"], h["split"], _pct(h["model"]), f"{h['baseline_name']}: {_pct(h['baseline'])}"]
                       for h in results["headline"]]) + [""]
    if results.get("timings_seconds"):
        out += ["## Run", ""] + [f"- {k}: {v:.0f} s" for k, v in results["timings_seconds"].items()]
        out += [f"- {k}: {v}" for k, v in results.get("machine", {}).items()] + [""]
    return "\n".join(out)


def write_results_markdown(path: str, results: Mapping) -> str:
    write_bytes_atomic(path, results_markdown(_finite(results)).encode())
    return path


# ----------------------------------------------------------------------------- curves.png
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    span = max(hi - lo, 1e-9)
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


def _panel(title: str, xs_labels: Sequence[str], stage_of: Sequence[str], series: Mapping[str, Sequence[float]],
           baseline: float, width: int = 520, height: int = 380) -> np.ndarray:
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 62, 14, 46, 58
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if baseline is not None and math.isfinite(baseline):
        values.append(baseline)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    n = max(len(xs_labels), 1)

    def px(i):
        return int(x0 + (x1 - x0) * (i + 0.5) / n)

    def py(v):
        return int(y1 - (y1 - y0) * (v - lo) / (hi - lo))

    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (left, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    # Stage bands: alternating shades with the stage name on top.
    start = 0
    for k in range(1, n + 1):
        if k == n or stage_of[k] != stage_of[start]:
            xa = int(x0 + (x1 - x0) * start / n)
            xb = int(x0 + (x1 - x0) * k / n)
            if len({s for s in stage_of[:start]}) % 2 == 0:
                cv2.rectangle(img, (xa, y0), (xb, y1), (240, 240, 240), -1)
            cv2.putText(img, stage_of[start], (xa + 3, y0 - 6), font, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
            start = k
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    for t in _nice_ticks(lo, hi):
        if lo <= t <= hi:
            y = py(t)
            cv2.line(img, (x0 - 4, y), (x0, y), (0, 0, 0), 1)
            cv2.line(img, (x0 + 1, y), (x1 - 1, y), (225, 225, 225), 1)
            cv2.putText(img, f"{t:g}", (4, y + 4), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for i, lab in enumerate(xs_labels):
        x = px(i)
        cv2.line(img, (x, y1), (x, y1 + 4), (0, 0, 0), 1)
        if n <= 16 or i % max(1, n // 16) == 0:
            cv2.putText(img, lab, (x - 8, y1 + 16), font, 0.34, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "evaluation (training stage above)", (x0, height - 28), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if baseline is not None and math.isfinite(baseline):
        y = py(baseline)
        for xa in range(x0, x1, 12):
            cv2.line(img, (xa, y), (min(xa + 6, x1), y), (120, 120, 120), 1)
    legend = list(series) + (["trivial baseline"] if baseline is not None and math.isfinite(baseline) else [])
    for j, (name, vals) in enumerate(series.items()):
        color = _COLORS[j % len(_COLORS)]
        pts = [(px(i), py(v)) for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, color, -1, cv2.LINE_AA)
    # Legend on one row under the axis title.
    lx = x0
    for j, name in enumerate(legend):
        color = _COLORS[j % len(_COLORS)] if j < len(series) else (120, 120, 120)
        ly = height - 10
        cv2.line(img, (lx, ly - 4), (lx + 18, ly - 4), color, 2)
        cv2.putText(img, name, (lx + 22, ly), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        lx += 30 + 8 * len(name)
    return img


def curves_image(results: Mapping) -> np.ndarray:
    """One panel per task: its headline metric (%) at every evaluation, one line per
    interaction iteration, with the stage bands of Fig. 7 and the trivial baseline."""
    history = results.get("history", [])
    tasks = results["tasks"]
    labels = [str(k + 1) for k in range(len(history))]
    stages = [_stage_label(h.get("stage", h["phase"]), tasks) for h in history]
    panels = []
    for t in tasks:
        key, name, _ = headline(t)
        iters = sorted({it for h in history for it in h["metrics"].get(t, {})}, key=lambda k: int(k.split("_")[-1]))
        series = {it.replace("iter_", "Iter"): [
            (100.0 * h["metrics"][t][it]) if h["metrics"].get(t, {}).get(it) is not None else None for h in history]
            for it in iters}
        base = results.get("baselines", {}).get(t, {})
        if t == "landmarks":
            b = base.get("mean_shape", {}).get("nme")
        elif t == "parsing":
            b = base.get("majority_class", {}).get("overall")
        else:
            b = base.get("majority")
        panels.append(_panel(f"{t}: {name}", labels, stages, series, None if b is None else 100.0 * b))
    if not panels:
        return np.full((100, 100, 3), 255, np.uint8)
    return np.concatenate(panels, axis=1)


def write_curves_png(path: str, results: Mapping) -> str:
    from keras_facemt.data.drawing import write_png_atomic

    write_png_atomic(path, curves_image(_finite(results)))
    return path


# ----------------------------------------------------------------------------- predictions.png
def _stage_label(stage: str, tasks: Sequence[str]) -> str:
    # Fig. 7 names the pre-training of the k-th task "Tk".
    if stage.startswith("pretrain_") and stage[len("pretrain_"):] in tasks:
        return f"T{list(tasks).index(stage[len('pretrain_'):]) + 1}"
    return "FT" if stage.startswith("finetune") else stage


def prediction_tile(example: Mapping, tasks: Sequence[str], size: int = 192) -> np.ndarray:
    """One test face with the model's final predictions drawn (``drawing.draw_labels``).

    Parsing classes are overlaid in colour, predicted landmarks are dots and the
    predicted attribute classes are written on the face. The example's own label is
    added: red rings at the true landmarks on the landmark test set, ``gt <class>``
    under the prediction on an attribute's test set.
    """
    import cv2

    from keras_facemt.data.drawing import draw_labels

    labels = {t: example[t] for t in tasks}
    img = draw_labels(example["image"], labels, min_size=size)
    h, w = img.shape[:2]
    own = example["task"]
    if own == "landmarks":
        for x, y in np.asarray(example["label"]).reshape(-1, 2):
            cv2.circle(img, (int(round(x * w)), int(round(y * h))), max(3, w // 50), (255, 40, 40), 1, cv2.LINE_AA)
    elif own not in HEADLINES:
        from keras_facemt.data import schema

        spec = schema.attribute_spec(own)
        names = spec.class_names or tuple(str(i) for i in range(spec.num_classes))
        text = f"gt {names[int(example['label'])]}"
        cv2.putText(img, text, (4, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (4, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
    return img


def predictions_image(examples: Mapping[str, Sequence[Mapping]], tasks: Sequence[str], size: int = 192) -> np.ndarray:
    """A grid with one row per task's test set (in ``tasks`` order), each face drawn
    with every task's prediction."""
    from keras_facemt.data.drawing import contact_sheet

    cols = max((len(v) for v in examples.values()), default=1)
    tiles = []
    for t in tasks:
        row = [prediction_tile(ex, tasks, size) for ex in examples.get(t, [])]
        tiles += row + [np.full((size, size, 3), 255, np.uint8)] * (cols - len(row))
    return contact_sheet(tiles, cols=max(cols, 1), tile_size=size)


def write_predictions_png(path: str, examples: Mapping[str, Sequence[Mapping]], tasks: Sequence[str]) -> str:
    from keras_facemt.data.drawing import write_png_atomic

    write_png_atomic(path, predictions_image(examples, tasks))
    return path
