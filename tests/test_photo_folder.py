"""Throughput mode: a directory of photos, streamed to JSON lines, resumable."""

import io
import json
import os

import cv2
import numpy as np
import pytest

from keras_facemt.cli import main
from keras_facemt.inference import photo_folder
from keras_facemt.inference.face import Face


def _photos(root, n=5):
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "sub"))
    names = [f"p{i}.png" for i in range(n)] + [os.path.join("sub", "q.jpg")]
    for i, name in enumerate(names):
        cv2.imwrite(os.path.join(root, name), rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8))
    with open(os.path.join(root, "bad.jpg"), "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not a photo, not listed\n")
    return sorted(names + ["bad.jpg"])


def _runner(calls):
    def run(images):
        calls.append(len(images))
        faces = [[Face(box=np.array([0, 0, im.shape[1], im.shape[0]], np.float32))] for im in images]
        return faces, [0] * len(images)

    return run


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_every_photo_once_corrupt_ones_reported_and_a_cut_run_resumes(tmp_path):
    photos = str(tmp_path / "photos")
    names = _photos(photos)
    out = str(tmp_path / "out.jsonl")
    calls = []
    log = io.StringIO()
    summary = photo_folder.analyse_folder(_runner(calls), photos, out, batch_size=4, stream=log)
    assert (summary["processed"], summary["errors"], summary["faces"], summary["skipped"]) == (6, 1, 6, 0)
    assert summary["images_per_s"] > 0 and summary["faces_per_s"] > 0
    lines = _lines(out)
    assert sorted(rec["image"] for rec in lines) == names
    bad = [rec for rec in lines if rec["image"] == "bad.jpg"][0]
    assert "not a decodable image" in bad["error"] and "skipped" in log.getvalue()
    # Each photo's own size came through (the right pixels for the right line).
    q = [rec for rec in lines if rec["image"] == os.path.join("sub", "q.jpg")][0]
    assert q["faces"][0]["box"] == [0, 0, 30, 25]

    # A run killed while writing: three complete lines and half of the fourth.
    text = open(out).read().splitlines(keepends=True)
    with open(out, "w") as f:
        f.write("".join(text[:3]) + text[3][: len(text[3]) // 2])
    calls.clear()
    summary = photo_folder.analyse_folder(_runner(calls), photos, out, batch_size=4, progress=False)
    assert summary["skipped"] == 3 and summary["processed"] + summary["errors"] == 4
    assert sum(calls) == summary["processed"]
    assert sorted(rec["image"] for rec in _lines(out)) == names  # every photo exactly once

    # Nothing left to do: nothing runs.
    calls.clear()
    summary = photo_folder.analyse_folder(_runner(calls), photos, out, progress=False)
    assert calls == [] and summary["skipped"] == 7 and summary["processed"] == 0


def test_decoding_runs_ahead_but_bounded(tmp_path, monkeypatch):
    photos = str(tmp_path / "photos")
    os.makedirs(photos)
    for i in range(30):
        cv2.imwrite(os.path.join(photos, f"{i:02d}.png"), np.zeros((8, 8, 3), np.uint8))
    decoded = []
    real = photo_folder.decode_photo
    monkeypatch.setattr(photo_folder, "decode_photo", lambda p: decoded.append(p) or real(p))
    ahead = []
    processed = [0]

    def run(images):
        ahead.append(len(decoded) - processed[0])
        processed[0] += len(images)
        return [[] for _ in images], [0] * len(images)

    photo_folder.analyse_folder(run, photos, str(tmp_path / "o.jsonl"), batch_size=2, prefetch=6, progress=False)
    assert processed[0] == 30
    assert max(ahead) <= 6 + 2  # the prefetch window plus the batch being filled
    assert max(ahead) > 2  # and it does read ahead of the models


def test_cli_input_dir_writes_jsonl_with_a_summary_and_resumes(tmp_path, capsys):
    from keras_facemt.models.registry import build_model
    from keras_facemt.serving.keras_format import save_model

    model = save_model(build_model("ifan", "tiny"), str(tmp_path / "ifan.keras"))
    photos = str(tmp_path / "photos")
    _photos(photos, n=3)
    out = str(tmp_path / "faces.jsonl")
    argv = ["predict", "--model", model, "--input-dir", photos, "--jsonl", out, "--batch-size", "2"]
    assert main(argv) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("processed 4 photos (0 already done, 1 unreadable)")
    assert "images/s" in summary and "faces/s" in summary
    assert len(_lines(out)) == 5
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("processed 0 photos (5 already done")


@pytest.mark.parametrize("argv, message", [
    (["--input-dir", "{missing}", "--jsonl", "{out}"], "not a directory of photos"),
    (["--input-dir", "{dir}"], "--input-dir needs --jsonl"),
])
def test_cli_input_dir_bad_input(tmp_path, capsys, argv, message):
    os.makedirs(tmp_path / "d")
    fill = {"{missing}": str(tmp_path / "nope"), "{out}": str(tmp_path / "o.jsonl"), "{dir}": str(tmp_path / "d")}
    argv = [fill.get(a, a) for a in argv]
    assert main(["predict", "--model", "x.keras"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
