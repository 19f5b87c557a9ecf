"""``facemt convert``'s ``--tolerance`` (geometry slightly outside the image is kept and
clipped, beyond it skipped) and ``--verify-images`` (damage inside the compressed data
that the header check misses), end to end through the CLI on a JSON-lines dataset."""

import json

import cv2
import numpy as np
import pytest

from keras_facemt.cli import main
from tests.fixtures_layouts import read_dataset

W = H = 40


def _png(path, damaged=False):
    img = (np.arange(H * W * 3) % 251).reshape(H, W, 3).astype(np.uint8)
    data = bytearray(cv2.imencode(".png", img)[1].tobytes())
    if damaged:
        # Header, IHDR and IEND intact (the cheap check passes); the deflate stream is garbage.
        start = data.index(b"IDAT") + 8
        for j in range(start, start + 32):
            data[j] ^= 0x5A
    path.write_bytes(bytes(data))


def _dataset(root, lines):
    (root / "images").mkdir(parents=True)
    for name, damaged in (("ok.png", False), ("damaged.png", True)):
        _png(root / "images" / name, damaged)
    with open(root / "faces.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def _convert(tmp_path, capsys, name, *flags):
    out = tmp_path / name
    argv = ["convert", "jsonl", "--root", str(tmp_path / "src"), "--out", str(out), "--workers", "1",
            "--verify-records", "1", *flags]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((out / "dataset.json").read_text())
    return read_dataset(str(out)), summary, capsys.readouterr()


@pytest.mark.parametrize("tolerance,kept", [(None, False), ("0.2", True)])
def test_tolerance_keeps_and_clips_or_skips(tmp_path, capsys, tolerance, kept):
    # A box 6 px (15% of 40) left of the image and one 2 px (5%) left of it.
    _dataset(tmp_path / "src", [
        {"image": "images/ok.png", "source_id": "far", "faces": [{"bbox": [-6, 4, 20, 30]}]},
        {"image": "images/ok.png", "source_id": "near", "faces": [{"bbox": [-2, 4, 20, 30]}]},
    ])
    flags = [] if tolerance is None else ["--tolerance", tolerance]
    records, _, out = _convert(tmp_path, capsys, "out", *flags)
    assert "near" in records and ("far" in records) == kept
    # Kept boxes are clipped to the image: xmin 0, the rest exact (pixels / 40).
    np.testing.assert_allclose(records["near"].bboxes, [[0.0, 0.1, 0.5, 0.75]], atol=1e-6)
    if kept:
        np.testing.assert_allclose(records["far"].bboxes, [[0.0, 0.1, 0.5, 0.75]], atol=1e-6)
    else:
        assert "faces.jsonl:1: face 0 box [-6.0, 4.0, 20.0, 30.0] lies outside the 40x40 image" in out.err


def test_verify_images_catches_damage_the_header_check_misses(tmp_path, capsys):
    _dataset(tmp_path / "src", [{"image": "images/ok.png", "source_id": "ok"},
                                {"image": "images/damaged.png", "source_id": "damaged"}])
    records, _, _ = _convert(tmp_path, capsys, "quick")
    assert sorted(records) == ["damaged", "ok"]  # the header alone looks fine
    records, _, out = _convert(tmp_path, capsys, "verified", "--verify-images")
    assert sorted(records) == ["ok"]
    assert "damaged.png" in out.err and "corrupt" in out.err
