"""``facemt inspect DIR``: what a converted dataset holds, as a table and a picture.

The table comes from ``dataset.json`` (counts per split, faces, task presence,
landmark schemes, attribute histograms, skipped entries, converter and sources) and
is checked against the shards: the records actually present per split are counted,
and a mismatch is reported. The contact sheet shows random records (seeded) with
every label drawn: boxes, landmarks (visible / hidden), the parsing overlay, and a
caption band listing each face's attributes, pose and identity.
"""

from __future__ import annotations

import collections
import glob
import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_facemt.data import schema
from keras_facemt.data.shards import read_manifest
from keras_facemt.errors import DataError


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def count_records(data_dir: str) -> Dict[str, int]:
    """Records per split, counted in the shards (``<split>-XXXXX-of-XXXXX.tfrecord``)."""
    import tensorflow as tf

    counts: Dict[str, int] = collections.Counter()
    for path in sorted(glob.glob(os.path.join(data_dir, "*.tfrecord"))):
        split = os.path.basename(path).rsplit("-", 3)[0]
        try:
            counts[split] += sum(1 for _ in tf.data.TFRecordDataset(path))
        except tf.errors.DataLossError:
            raise DataError(f"{path}: shard is corrupt (truncated or not a TFRecord file).") from None
    return dict(counts)


def statistics(data_dir: str, count: bool = True) -> str:
    """The statistics report of a dataset directory.

    Raises:
        DataError: if the directory is not a complete dataset, or (with ``count``)
            its shards do not hold the records the manifest lists.
    """
    m = read_manifest(data_dir)
    counts = m.get("counts", {})
    splits = sorted(counts)
    out = [f"dataset: {os.path.abspath(data_dir)}"]
    if m.get("converter"):
        out.append(f"converter: {m['converter']} v{m.get('converter_version')} (splits: {m.get('split_source')}); "
                   f"source: {m.get('source_root')}")
    rows = [[s, counts[s], m.get("faces", {}).get(s, 0)] for s in splits]
    if count:
        found = count_records(data_dir)
        for r in rows:
            r.append(found.get(r[0], 0))
        bad = [s for s in splits if found.get(s, 0) != counts[s]]
        if bad:
            raise DataError(f"{data_dir}: shards disagree with {'dataset.json'} for splits {bad}: "
                            f"manifest {counts}, shards {found}.")
    out += ["", _table(rows, ["split", "images", "faces"] + (["in shards"] if count else []))]
    presence = m.get("presence", {})
    tasks = sorted({t for s in presence.values() for t in s if any(v.get(t) for v in presence.values())})
    if tasks:
        out += ["", "labelled faces per task (detection/parsing: images)",
                _table([[t] + [presence.get(s, {}).get(t, 0) for s in splits] for t in tasks], ["task"] + splits)]
    if m.get("landmark_schemes"):
        out += ["", "landmark schemes: " + ", ".join(f"{k}={v}" for k, v in sorted(m["landmark_schemes"].items()))]
    hists = m.get("attribute_histograms", {})
    if hists:
        rows = []
        for name in sorted(hists):
            h = hists[name]
            spec = schema.ATTRIBUTES.get(name)
            labels = []
            for v, n in sorted(h.items(), key=lambda kv: float(kv[0])):
                label = v
                if spec is not None and spec.class_names and v.lstrip("-").isdigit() and int(v) < len(spec.class_names):
                    label = spec.class_names[int(v)]
                elif spec is not None and spec.kind == "regression":
                    label = f"{v}s"
                labels.append(f"{label}:{n}")
            rows.append([name, sum(h.values()), " ".join(labels)])
        out += ["", _table(rows, ["attribute", "labelled", "histogram (value:count)"])]
    probs = m.get("problems")
    if probs:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(probs.get("by_kind", {}).items())) or "none"
        out += ["", f"skipped entries: {probs.get('skipped', 0)} ({kinds})"]
        out += [f"  {msg}" for msg in probs.get("messages", [])[:10]]
    notes = m.get("notes")
    if notes:
        out += [f"notes: {notes}"]
    sources = m.get("source_files", [])
    if sources:
        out += ["", "source files:"] + [f"  {s['path']}  sha256={s['sha256'][:16]}...  {s['bytes']} bytes"
                                        for s in sources]
    return "\n".join(out)


def _sample_records(data_dir: str, num: int, seed: int, split: Optional[str]):
    from keras_facemt.data.codec import FaceRecord
    from tfrecords_tools.common import reservoir_sample

    pattern = f"{split}-*.tfrecord" if split else "*.tfrecord"
    shards = sorted(glob.glob(os.path.join(data_dir, pattern)))
    if not shards:
        raise DataError(f"{data_dir}: no '{pattern}' shards found.")
    rng = np.random.default_rng(seed)
    rng.shuffle(shards)
    picked: List = []
    per_shard = max(1, math.ceil(num / len(shards)))
    for path in shards:
        for raw in reservoir_sample(path, min(per_shard, num - len(picked)), rng):
            picked.append(FaceRecord.from_example(raw, source=path))
        if len(picked) >= num:
            break
    return picked


def _caption_lines(rec) -> List[str]:
    """Every per-face label not drawn on the image, one line per face."""
    lines = []
    for i in range(rec.num_faces):
        parts = []
        for name in sorted(rec.attributes):
            if not rec.has_attributes[name][i]:
                continue
            v = rec.attributes[name][i]
            if name.startswith("celeba/"):
                continue
            spec = schema.ATTRIBUTES[name]
            parts.append(f"{name}={spec.class_names[int(v)]}" if spec.class_names else
                         f"{name}={float(v):.1f}" if spec.kind == "regression" else f"{name}={int(v)}")
        on = [n[len("celeba/"):] for n in sorted(rec.attributes)
              if n.startswith("celeba/") and rec.has_attributes[n][i] and rec.attributes[n][i]]
        if on:
            parts.append("celeba: " + ",".join(on))
        if rec.pose is not None and rec.has_pose[i]:
            parts.append("pose " + "/".join(f"{v:+.0f}" for v in rec.pose[i]))
        if rec.identity is not None and rec.has_identity[i]:
            parts.append(f"id {int(rec.identity[i])}")
        if parts:
            lines.append(f"#{i} " + " ".join(parts))
    return [rec.source_id[-40:]] + lines


def _with_caption(img: np.ndarray, lines: List[str]) -> np.ndarray:
    import cv2

    width = img.shape[1]
    chars = max(20, width // 7)
    wrapped = []
    for line in lines:
        wrapped += [line[j : j + chars] for j in range(0, max(len(line), 1), chars)]
    wrapped = wrapped[:12]
    band = np.full((14 * len(wrapped) + 6, width, 3), 16, np.uint8)
    for j, line in enumerate(wrapped):
        cv2.putText(band, line, (3, 14 * (j + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([img, band], 0)


def contact_sheet_png(data_dir: str, path: str, num: int = 16, seed: int = 0, split: Optional[str] = None,
                      cols: int = 4) -> int:
    """Writes a PNG contact sheet of ``num`` random records with every label drawn.

    Returns:
        The number of records drawn.
    """
    from keras_facemt.data.drawing import contact_sheet, draw_labels, record_labels

    tiles = []
    for rec in _sample_records(data_dir, num, seed, split):
        image, labels = record_labels(rec)
        drawn = draw_labels(image, labels, min_size=256)
        tiles.append(_with_caption(drawn, _caption_lines(rec)))
    size = max(max(t.shape[:2]) for t in tiles)
    contact_sheet(tiles, path=path, cols=cols, tile_size=size)
    return len(tiles)


def register_inspect(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="statistics table and contact sheet of a converted dataset")
    p.add_argument("data_dir")
    p.add_argument("--sheet", default=None, help="contact-sheet PNG path (default: DIR/../<name>_sheet.png)")
    p.add_argument("--num", type=int, default=16, help="records on the contact sheet (0: none)")
    p.add_argument("--split", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-count", action="store_true", help="trust dataset.json instead of counting the shards")
    p.set_defaults(func=_run)


def _run(args) -> int:
    print(statistics(args.data_dir, count=not args.no_count))
    if args.num > 0:
        d = os.path.abspath(args.data_dir)
        sheet = args.sheet or os.path.join(os.path.dirname(d), os.path.basename(d) + "_sheet.png")
        n = contact_sheet_png(args.data_dir, sheet, num=args.num, seed=args.seed, split=args.split)
        print(f"\ncontact sheet: {sheet} ({n} records)")
    return 0
