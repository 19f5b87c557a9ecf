"""``facemt evaluate``: a trained model scored on converted public-layout datasets."""

import json

import numpy as np
import pytest

from keras_facemt.cli import main
from keras_facemt.models.model_info import attach, info_of
from keras_facemt.models.registry import build_model
from keras_facemt.serving.keras_format import save_model
from tests.fixtures_layouts import make_helen_parsing, make_mtfl
from tfrecords_tools.common import run_conversion
from tfrecords_tools.convert_helen_parsing import HelenParsingConverter
from tfrecords_tools.convert_mtfl import MtflConverter


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    out = {}
    for name, make, cls in (("mtfl", make_mtfl, MtflConverter), ("helen", make_helen_parsing, HelenParsingConverter)):
        lay = make(str(root / f"{name}_src"))
        run_conversion(cls(**lay.kwargs), str(root / name))
        out[name] = str(root / name)
    return out


@pytest.fixture(scope="module")
def ifan_file(tmp_path_factory, converted):
    """A tiny iFAN model file that knows its BN domains by dataset name (as a run's does)."""
    model = build_model("ifan", "tiny")
    datasets = {}
    for name, d in converted.items():
        with open(f"{d}/dataset.json") as f:
            datasets[name] = next(iter(json.load(f)["datasets"]))
    attach(model, info_of(model).replace(domains={datasets["helen"]: 0, datasets["mtfl"]: 1}))
    return save_model(model, str(tmp_path_factory.mktemp("model") / "ifan.keras")), model


def test_scores_landmarks_on_mtfl_and_parsing_on_helen(ifan_file, converted, tmp_path, capsys):
    path, model = ifan_file
    out = str(tmp_path / "report.json")
    assert main(["evaluate", "--model", path, "--data", converted["mtfl"], "--data", converted["helen"],
                 "--out", out]) == 0, capsys.readouterr().err
    report = json.load(open(out))
    assert report["system"] == "ifan" and report["split"] == "test"
    mtfl = report["datasets"][converted["mtfl"]]["tasks"]
    helen = report["datasets"][converted["helen"]]["tasks"]
    # MTFL carries landmarks only; Helen parsing only: each is scored on what it has.
    assert set(mtfl) == {"landmarks"} and set(helen) == {"parsing"}
    assert mtfl["landmarks"]["examples"] == 1 and 0 <= helen["parsing"]["overall_fscore"] <= 1
    assert (tmp_path / "report.md").read_text().count("| landmarks | nme |") == 1

    # Independent check of the NME: the model run here on the converted test image
    # (domain 1, the MTFL dataset's), the inter-ocular distance between the two eye
    # centres (mtfl5 points 0 and 1) computed by hand.
    from keras_facemt.data.shards import iter_records
    import glob

    import cv2

    (rec,) = [r for p in glob.glob(converted["mtfl"] + "/test-*.tfrecord") for r in iter_records(p)]
    img = cv2.cvtColor(cv2.imdecode(np.frombuffer(rec.image, np.uint8), 1), cv2.COLOR_BGR2RGB)
    x = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA).astype("float32") / 255.0
    pred = np.asarray(model({"image": x[None], "domain": np.array([1], "int32")})["landmarks"])[0]
    truth = rec.landmarks[0]
    by_hand = np.mean(np.linalg.norm(pred - truth, axis=1)) / np.linalg.norm(truth[0] - truth[1])
    assert mtfl["landmarks"]["nme"] == pytest.approx(by_hand, rel=0.05)


def test_bad_inputs_are_one_line_errors(ifan_file, converted, tmp_path, capsys):
    path, _ = ifan_file
    assert main(["evaluate", "--model", path, "--data", converted["mtfl"], "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "has no 'val' split" in err and err.count("\n") == 1
    # A landmarks-only model on a parsing-only dataset: nothing to score.
    lm_only = build_model("ifan", "tiny", tasks=("landmarks",))
    lm_path = save_model(lm_only, str(tmp_path / "lm.keras"))
    assert main(["evaluate", "--model", lm_path, "--data", converted["helen"], "--domain", "0"]) == 2
    err = capsys.readouterr().err
    assert "carries no labels for this ifan model's tasks ['landmarks']" in err
    assert main(["evaluate", "--model", str(tmp_path / "missing.keras"), "--data", converted["mtfl"]]) == 2


def test_embedding_model_is_scored_on_converted_lfw_pairs(tmp_path, capsys):
    """An embedding model on a converted LFW: 10-fold protocol over pairs.json (here 2 folds x 2 pairs)."""
    from keras_facemt.data.codec import decode_image
    from keras_facemt.data.shards import iter_records, list_shards
    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.metrics.verification import verification_accuracy
    from tests.fixtures_layouts import make_lfw
    from tfrecords_tools.convert_lfw import LfwConverter

    lay = make_lfw(str(tmp_path / "src"))
    data = str(tmp_path / "lfw")
    run_conversion(LfwConverter(**lay.kwargs), data)
    path = save_model(build_model("mtfr", "tiny"), str(tmp_path / "mtfr.keras"))
    out = str(tmp_path / "report.json")
    assert main(["evaluate", "--model", path, "--data", data, "--out", out]) == 0, capsys.readouterr().err
    ver = json.load(open(out))["datasets"][data]["tasks"]["verification"]
    assert ver["pairs"] == 4 and ver["folds"] == 2 and ver["examples"] == 5 and ver["baseline_name"] == "chance"
    # The same protocol by hand: each fixture pair's two images by file name, their
    # embeddings, cosine scores, the published pairs' same/different labels.
    images = {rec.source_id: decode_image(rec.image) for p in list_shards(data, "test") for rec in iter_records(p)}
    analyzer = FaceAnalyzer(path)
    emb = {k: analyzer([im])[0][0].embedding for k, im in images.items()}
    by_name = {k.replace("\\", "/").split("lfw/")[-1]: k for k in emb}
    scores = [float(np.dot(emb[by_name[x]], emb[by_name[y]])) for _, x, y, _ in lay.pairs]
    expected = verification_accuracy(scores, [s for *_, s in lay.pairs], folds=[f for f, *_ in lay.pairs])
    assert ver["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
