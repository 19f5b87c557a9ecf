"""``facemt export`` refuses an int8 model that really loses more than the limit, and
leaves nothing behind.

The trained smoke model is quantised with calibration images dimmed to 2% of their
brightness: the int8 activation ranges then fit only near-black inputs, and the real
held-out images saturate them (a real int8 degradation, measured by the export's own
metric check, not a mocked verdict).
"""

import json
import os
import re

import pytest

from keras_facemt.cli import main
from keras_facemt.serving import verification_data
from keras_facemt.serving.verify import VerificationData


def _export_argv(run_dir, out):
    with open(run_dir / "run_config.json") as f:
        datasets = json.load(f)["datasets"]
    # Parsing and landmarks: scores over whole maps and point sets. Emotion accuracy over
    # the 16 held-out crops a task gets here moves 6 points per crop, so one crop's
    # flip would decide the honest export's verdict.
    data_dirs = sorted({datasets[t] for t in ("parsing", "landmarks")})
    argv = ["export", "--model-dir", str(run_dir), "--output", str(out), "--formats", "tflite",
            "--quantizations", "int8", "--examples", "48", "--calibration-samples", "48"]
    for d in data_dirs:
        argv += ["--data", d]
    return argv


@pytest.mark.slow
def test_int8_export_that_loses_accuracy_is_refused_and_leaves_nothing(ifan_smoke_run, tmp_path, monkeypatch, capsys):
    real = verification_data.load_verification_data

    def dimmed_calibration(model, data_dirs, split="test", *args, **kwargs):
        data = real(model, data_dirs, split, *args, **kwargs)
        if split != "train":
            return data
        return VerificationData({**data.inputs, "image": data.inputs["image"] * 0.02}, data.labels, data.source)

    def failing_tasks(err):
        found = re.search(r"loses more than the limit on ([^:]+):", err)
        return set(found.group(1).split(", ")) if found else set()

    # The same command with honest calibration keeps parsing and landmarks within the
    # limit: the refusal below is the dimming's. (The smoke model's emotion head has
    # near-tied logits on these out-of-domain crops, so int8 may flip its argmax on
    # some of them whatever the calibration: its verdict is not what is tested here.)
    honest = tmp_path / "export"
    code = main(_export_argv(ifan_smoke_run, honest))
    err = capsys.readouterr().err
    assert code == 0 or not failing_tasks(err) & {"parsing", "landmarks"}, err[-2000:]
    if code == 0:
        assert json.loads((honest / "manifest.json").read_text())["verification"]["passed"]
    refused = tmp_path / "refused"
    monkeypatch.setattr(verification_data, "load_verification_data", dimmed_calibration)
    code = main(_export_argv(ifan_smoke_run, refused))
    err = capsys.readouterr().err
    assert code != 0
    assert "model_int8.tflite" in err and failing_tasks(err) & {"parsing", "landmarks"}, err[-2000:]
    # Nothing left behind: no output directory, no temporary directory beside it.
    assert not refused.exists()
    assert sorted(os.listdir(tmp_path)) == (["export"] if honest.exists() else [])
