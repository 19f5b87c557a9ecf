"""Bad input to every ``facemt`` subcommand: exit status 2, one line naming the bad
thing, and nothing half-written where the output was to go.

Each case is ``(command, argv template, expected text, setup)``: ``{name}`` in the
template is replaced by the path of the fixture file ``name``; ``setup`` may
monkeypatch a writer so that it fails as a full disk does (``OSError(ENOSPC)``).
"""

import errno
import os

import numpy as np
import pytest

from keras_facemt.cli import main

_DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _disk_full(*_, **__):
    raise _DISK_FULL


def _full_shard_writes(monkeypatch):
    from keras_facemt.data.shards import ShardWriter

    monkeypatch.setattr(ShardWriter, "write_serialized", _disk_full)


def _full_json_writes(monkeypatch):
    """Every atomic write (``keras_facemt.io``) fails as a full disk does, after writing."""
    import keras_facemt.io

    monkeypatch.setattr(keras_facemt.io.os, "fsync", _disk_full)


def _full_model_saves(monkeypatch):
    import keras

    monkeypatch.setattr(keras.Model, "save", _disk_full)


def _full_png_writes(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imencode", _disk_full)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths the cases refer to by name."""
    import cv2
    import keras

    from keras_facemt import build_model
    from keras_facemt.data.synthetic import write_synthetic
    from keras_facemt.serving.keras_format import save_model

    root = tmp_path_factory.mktemp("inputs")
    p = {name: str(root / name) for name in ("missing", "empty.png", "text.png", "dir", "file", "model.keras",
                                             "truncated.keras", "other.keras", "photo.png", "blank.png", "data",
                                             "jsonl", "empty.keras", "broken_data", "cut_data", "detector.keras")}
    os.makedirs(p["dir"])
    open(p["empty.png"], "wb").close()
    open(p["empty.keras"], "wb").close()
    os.makedirs(p["broken_data"])
    open(os.path.join(p["broken_data"], "dataset.json"), "wb").close()  # empty manifest
    with open(p["text.png"], "w") as f:
        f.write("not an image\n")
    with open(p["file"], "w") as f:
        f.write("a plain file\n")
    cv2.imwrite(p["photo.png"], np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cv2.imwrite(p["blank.png"], np.zeros((64, 64, 3), np.uint8))
    save_model(build_model("ifan", "tiny"), p["model.keras"])
    from keras_facemt.models.registry import get_system

    uniface = get_system("uniface")
    save_model(uniface.serving_model(uniface.build(uniface.config("tiny")), uniface.config("tiny")),
               p["detector.keras"])
    data = open(p["model.keras"], "rb").read()
    with open(p["truncated.keras"], "wb") as f:
        f.write(data[: len(data) // 2])
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(p["other.keras"])
    write_synthetic(p["data"], count=4, shards=1, image_size=32, tasks=("landmarks",), splits=(("train", 0.5),
                    ("test", 0.5)))
    import shutil

    shutil.copytree(p["data"], p["cut_data"])
    shard = os.path.join(p["cut_data"], "train-00000-of-00001.tfrecord")
    p["cut_shard"] = shard
    data = open(shard, "rb").read()
    with open(shard, "wb") as f:
        f.write(data[: len(data) - 100])
    from tests import fixtures_layouts

    fixtures_layouts.make_jsonl(p["jsonl"])
    return p


def _out(tmp):
    return os.path.join(tmp, "out")


# (id, argv template, text the error line must contain, setup). "{out}" is a fresh
# output path; "{file}/x" is a location that cannot be created (a file is in the way).
CASES = [
    # synth
    ("synth-out-under-a-file", ["synth", "--out", "{file}/x", "--count", "2"], "{file}", None),
    ("synth-out-is-a-file", ["synth", "--out", "{file}", "--count", "2"], "{file}", None),
    ("synth-disk-full", ["synth", "--out", "{out}", "--count", "2", "--contact-sheet", "0"], "No space left",
     _full_shard_writes),
    # convert
    ("convert-missing-src", ["convert", "jsonl", "--src", "{missing}", "--out", "{out}"], "{missing}", None),
    ("convert-src-is-a-file", ["convert", "jsonl", "--src", "{file}", "--out", "{out}"], "{file}", None),
    ("convert-empty-src", ["convert", "jsonl", "--src", "{dir}", "--out", "{out}"], "{dir}", None),
    ("convert-out-under-a-file", ["convert", "jsonl", "--src", "{jsonl}", "--out", "{file}/x", "--workers", "1"],
     "{file}", None),
    ("convert-disk-full", ["convert", "jsonl", "--src", "{jsonl}", "--out", "{out}", "--workers", "1"],
     "No space left", _full_shard_writes),
    # inspect
    ("inspect-missing", ["inspect", "{missing}"], "{missing}", None),
    ("inspect-file-for-dir", ["inspect", "{file}"], "{file}", None),
    ("inspect-dir-without-dataset", ["inspect", "{dir}"], "{dir}", None),
    ("inspect-truncated-shard", ["inspect", "{cut_data}", "--num", "0"], "{cut_shard}", None),
    ("inspect-empty-dataset-json", ["inspect", "{broken_data}"], "{broken_data}/dataset.json", None),
    ("inspect-sheet-under-a-file", ["inspect", "{data}", "--sheet", "{file}/x.png"], "{file}", None),
    # vote-attributes
    ("vote-missing", ["vote-attributes", "{missing}", "{out}"], "{missing}", None),
    ("vote-file-for-dir", ["vote-attributes", "{file}", "{out}"], "{file}", None),
    ("vote-empty-dataset-json", ["vote-attributes", "{broken_data}", "{out}"], "{broken_data}/dataset.json", None),
    ("vote-truncated-shard", ["vote-attributes", "{cut_data}", "{out}"], "{cut_shard}", None),
    ("vote-out-under-a-file", ["vote-attributes", "{data}", "{file}/x"], "{file}", None),
    # train
    ("train-unknown-system", ["train", "nosuch"], "nosuch", None),
    ("train-missing-data", ["train", "ifan", "--", "--data", "landmarks={missing}", "--model-dir", "{out}"],
     "{missing}", None),
    ("train-data-is-a-file", ["train", "ifan", "--", "--data", "landmarks={file}", "--model-dir", "{out}"],
     "{file}", None),
    # export
    ("export-missing-model", ["export", "--model-dir", "{missing}", "--output", "{out}", "--data", "{data}"],
     "{missing}", None),
    ("export-empty-dir-model", ["export", "--model-dir", "{dir}", "--output", "{out}", "--data", "{data}"],
     "{dir}", None),
    ("export-empty-keras", ["export", "--model-dir", "{empty.keras}", "--output", "{out}", "--data", "{data}"],
     "{empty.keras}", None),
    ("export-empty-dataset-json", ["export", "--model-dir", "{model.keras}", "--output", "{out}", "--data",
                                   "{broken_data}"], "{broken_data}/dataset.json", None),
    ("export-truncated-keras", ["export", "--model-dir", "{truncated.keras}", "--output", "{out}", "--data",
                                "{data}"], "{truncated.keras}", None),
    ("export-non-keras-file", ["export", "--model-dir", "{text.png}", "--output", "{out}", "--data", "{data}"],
     "{text.png}", None),
    ("export-wrong-system", ["export", "--model-dir", "{other.keras}", "--output", "{out}", "--data", "{data}"],
     "{other.keras}", None),
    ("export-output-cannot-be-created", ["export", "--model-dir", "{model.keras}", "--output", "{file}/x",
                                         "--data", "{data}"], "{file}", None),
    ("export-output-is-a-file", ["export", "--model-dir", "{model.keras}", "--output", "{file}", "--data",
                                 "{data}"], "{file}", None),
    ("export-missing-data", ["export", "--model-dir", "{model.keras}", "--output", "{out}", "--data",
                             "{missing}"], "{missing}", None),
    ("export-disk-full", ["export", "--model-dir", "{model.keras}", "--output", "{out}", "--data", "{data}",
                          "--formats", "keras"], "No space left", _full_model_saves),
    # predict
    ("predict-missing-model", ["predict", "--model", "{missing}", "{photo.png}"], "{missing}", None),
    ("predict-dir-for-model", ["predict", "--model", "{dir}", "{photo.png}"], "{dir}", None),
    ("predict-empty-keras", ["predict", "--model", "{empty.keras}", "{photo.png}"], "{empty.keras}", None),
    ("predict-truncated-keras", ["predict", "--model", "{truncated.keras}", "{photo.png}"], "{truncated.keras}",
     None),
    ("predict-image-for-model", ["predict", "--model", "{photo.png}", "{photo.png}"], "{photo.png}", None),
    ("predict-wrong-system", ["predict", "--model", "{other.keras}", "{photo.png}"], "{other.keras}", None),
    ("predict-missing-image", ["predict", "--model", "{model.keras}", "{missing}"], "{missing}", None),
    ("predict-dir-for-image", ["predict", "--model", "{model.keras}", "{dir}"], "{dir}", None),
    ("predict-empty-image", ["predict", "--model", "{model.keras}", "{empty.png}"], "{empty.png}", None),
    ("predict-non-image", ["predict", "--model", "{model.keras}", "{text.png}"], "{text.png}", None),
    ("predict-out-under-a-file", ["predict", "--model", "{model.keras}", "--out", "{file}/x.json", "{photo.png}"],
     "{file}", None),
    ("predict-out-is-a-dir", ["predict", "--model", "{model.keras}", "--out", "{dir}", "{photo.png}"], "{dir}",
     None),
    ("predict-draw-is-a-file", ["predict", "--model", "{model.keras}", "--draw", "{file}", "{photo.png}"],
     "{file}", None),
    ("predict-disk-full-json", ["predict", "--model", "{model.keras}", "--out", "{out}", "{photo.png}"],
     "No space left", _full_json_writes),
    ("predict-disk-full-drawing", ["predict", "--model", "{model.keras}", "--draw", "{out}", "{photo.png}"],
     "No space left", _full_png_writes),
    # predict: detector + per-face models
    ("predict-missing-detector", ["predict", "--detector", "{missing}", "{photo.png}"], "{missing}", None),
    ("predict-crop-model-as-detector", ["predict", "--detector", "{model.keras}", "{photo.png}"],
     "{model.keras}", None),
    ("predict-detector-as-analyzer", ["predict", "--detector", "{detector.keras}", "--analyzer",
                                      "{detector.keras}", "{photo.png}"], "analyzer slot needs a per-face", None),
    ("predict-missing-analyzer", ["predict", "--detector", "{detector.keras}", "--analyzer", "{missing}",
                                  "{photo.png}"], "{missing}", None),
    ("predict-pipeline-non-image", ["predict", "--detector", "{detector.keras}", "--analyzer", "{model.keras}",
                                    "{text.png}"], "{text.png}", None),
    ("predict-pipeline-missing-image", ["predict", "--detector", "{detector.keras}", "{missing}"], "{missing}",
     None),
    ("predict-analyzer-without-detector", ["predict", "--analyzer", "{model.keras}", "{photo.png}"], "--detector",
     None),
    ("predict-model-and-detector", ["predict", "--model", "{model.keras}", "--detector", "{detector.keras}",
                                    "{photo.png}"], "Pass one of them", None),
    # compare
    ("compare-missing-image", ["compare", "{photo.png}", "{missing}", "--model", "{detector.keras}"], "{missing}",
     None),
    ("compare-non-image", ["compare", "{text.png}", "{photo.png}", "--model", "{detector.keras}"], "{text.png}",
     None),
    ("compare-missing-model", ["compare", "{photo.png}", "{photo.png}", "--model", "{missing}"], "{missing}", None),
    ("compare-not-a-recognition-model", ["compare", "{photo.png}", "{photo.png}", "--model", "{model.keras}"],
     "{model.keras}: not a recognition model", None),
    ("compare-no-threshold", ["compare", "{photo.png}", "{photo.png}", "--model", "{detector.keras}"],
     "pass --threshold", None),
    ("compare-crop-model-as-detector", ["compare", "{photo.png}", "{photo.png}", "--model", "{detector.keras}",
                                        "--detector", "{model.keras}", "--threshold", "0.5"], "detects faces itself",
     None),
    # evaluate
    ("evaluate-missing-model", ["evaluate", "--model", "{missing}", "--data", "{data}"], "{missing}", None),
    ("evaluate-wrong-system", ["evaluate", "--model", "{other.keras}", "--data", "{data}"], "{other.keras}", None),
    ("evaluate-truncated-keras", ["evaluate", "--model", "{truncated.keras}", "--data", "{data}"],
     "{truncated.keras}", None),
    ("evaluate-missing-data", ["evaluate", "--model", "{model.keras}", "--data", "{missing}"], "{missing}", None),
    ("evaluate-file-for-data", ["evaluate", "--model", "{model.keras}", "--data", "{file}"], "{file}", None),
    ("evaluate-empty-dataset-json", ["evaluate", "--model", "{model.keras}", "--data", "{broken_data}"],
     "{broken_data}/dataset.json", None),
    ("evaluate-no-such-split", ["evaluate", "--model", "{model.keras}", "--data", "{data}", "--split", "val"],
     "{data}", None),
    ("evaluate-out-under-a-file", ["evaluate", "--model", "{model.keras}", "--data", "{data}", "--domain", "0",
                                   "--out", "{file}/x.json"], "{file}", None),
    ("evaluate-disk-full", ["evaluate", "--model", "{model.keras}", "--data", "{data}", "--domain", "0",
                            "--out", "{out}"], "No space left", _full_json_writes),
    # bench (benchmarks read no files: their name is the only input)
    ("bench-unknown", ["bench", "nosuch"], "nosuch", None),
]


def _fill(text, files, out):
    for name, path in dict(files, out=out).items():
        text = text.replace("{" + name + "}", path)
    return text


def _listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, files, tmp_path, monkeypatch, capsys):
    name, argv, expected, setup = case
    out = _out(str(tmp_path))
    argv = [_fill(a, files, out) for a in argv]
    if setup is not None:
        setup(monkeypatch)
    before = {d: _listing(d) for d in (os.path.dirname(files["file"]), files["dir"], files["data"])}
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith(("WARNING", "I0000", "W0000", "E0000"))]
    assert code == 2, (name, err)
    assert len(err) == 1, err
    assert _fill(expected, files, out) in err[0], err
    # Nothing half-written: no output, no temporary left beside it or in the inputs.
    assert not os.path.exists(out), os.listdir(out) if os.path.isdir(out) else out
    assert [p for p in os.listdir(str(tmp_path)) if p != "out"] == []
    assert {d: _listing(d) for d in before} == before


def test_predict_draw_with_no_face_found_draws_the_image_without_boxes(files, tmp_path, capsys):
    """A photo where the detector finds nothing is a result, not an error."""
    import json

    import keras

    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    system = get_system("uniface")
    config = system.config("tiny")
    model = system.build(config)
    # An untrained head can score a blank image as a face (score 1.0 was seen), so the
    # class convolutions are pinned: background logit +20, face logit -20 at every anchor.
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    heads = [layer for layer in layers if "_cls" in layer.name and isinstance(layer, keras.layers.Conv2D)]
    assert heads, [layer.name for layer in layers]
    for layer in heads:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.tile(np.float32([20.0, -20.0]), bias.shape[0] // 2)])
    detector = system.serving_model(model, config)
    model = save_model(detector, str(tmp_path / "det.keras"))
    draw, out = str(tmp_path / "drawings"), str(tmp_path / "r.json")
    assert main(["predict", "--model", model, "--out", out, "--draw", draw, files["blank.png"]]) == 0, \
        capsys.readouterr().err
    assert json.load(open(out)) == [{"image": files["blank.png"], "faces": []}]
    assert os.listdir(draw) == ["blank.png"]
