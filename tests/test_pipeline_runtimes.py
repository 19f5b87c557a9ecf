"""The same two-stage pipelines (Uniface + iFAN, Uniface + MTFR) run from ``.keras``
models, from TFLite and from ONNX exports, and find the same faces.

The exports' manifests alone tell the pipeline each stage's preprocessing and
outputs (the artifacts are loaded by path, nothing else is passed)."""

import dataclasses
import os

import keras
import numpy as np
import pytest

from keras_facemt.data.synthetic import SynthFace
from keras_facemt.inference.pipeline import FacePipeline
from keras_facemt.models import registry


def _export(model, out_dir, seed=0):
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.verify import VerificationData

    h, w = (int(d) for d in model.input["image"].shape[1:3])
    rng = np.random.default_rng(seed)
    inputs = {"image": rng.uniform(0, 1, (2, h, w, 3)).astype("float32"), "domain": np.zeros(2, "int32")}
    export_model(model, out_dir, VerificationData(inputs, {}, "random"),
                 ExportOptions(formats=("keras", "tflite", "onnx"), quantizations=("float32",), saved_model_cli=False),
                 log=None)
    return out_dir


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_runtimes")
    keras.utils.set_random_seed(3)
    uniface = registry.get_system("uniface")
    cfg = dataclasses.replace(uniface.config("tiny"), score_threshold=0.2, max_detections=12)
    detector = uniface.serving_model(uniface.build(cfg, "tiny"), cfg, "tiny")
    return {
        "uniface": _export(detector, str(root / "uniface")),
        "ifan": _export(registry.build_model("ifan", "tiny"), str(root / "ifan")),
        "mtfr": _export(registry.build_model("mtfr", "tiny"), str(root / "mtfr")),
    }


def _artifact(export_dir, runtime):
    return os.path.join(export_dir, {"keras": "model.keras", "tflite": "tflite/model_float32.tflite",
                                     "onnx": "onnx/model.onnx"}[runtime])


def _cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:FacePipeline:UserWarning")  # the untrained detector fills its 12 slots
def test_keras_tflite_and_onnx_pipelines_find_the_same_faces(exports):
    photos = [SynthFace(seed=5, domain="outdoor", image_size=256).render_scene(i, max_faces=6, min_faces=3)[0]
              for i in range(2)]
    photos[1] = photos[1][:, 40:]  # another size and aspect ratio
    results = {}
    for runtime in ("keras", "tflite", "onnx"):
        pipe = FacePipeline(_artifact(exports["uniface"], runtime),
                            [_artifact(exports["ifan"], runtime), _artifact(exports["mtfr"], runtime)])
        assert [s.runtime.split()[0] for s in pipe.stages] == [runtime] * 3
        results[runtime] = pipe(photos)
    reference = results["keras"]
    assert sum(len(r) for r in reference) > 2
    for runtime in ("tflite", "onnx"):
        for ref_faces, faces in zip(reference, results[runtime]):
            assert len(faces) == len(ref_faces), runtime
            for a, b in zip(ref_faces, faces):
                np.testing.assert_allclose(b.box, a.box, atol=1.0)
                np.testing.assert_allclose(b.landmarks, a.landmarks, atol=1.0)
                assert b.sources == a.sources
                assert b.label("emotion") == a.label("emotion")
                celeba = [k for k in a.attributes if k.startswith("celeba/")]
                assert celeba and all((a.attributes[k] > 0.5) == (b.attributes[k] > 0.5) for k in celeba)
                assert _cosine(a.embedding, b.embedding) >= 0.99
                # Parsing mapped into the photo: the same pixels, but for rare ties at class borders.
                assert np.mean(a.parsing == b.parsing) > 0.99
    face = reference[0][0]
    assert face.parsing.shape == photos[0].shape[:2] and face.embedding.shape == (32,)
    assert face.sources["landmarks"] == "ifan" and face.sources["embedding"] == "mtfr"


def test_an_export_directory_runs_its_chosen_artifact_with_the_manifest_declaration(exports):
    from keras_facemt.errors import ExportError
    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.inference.stage import load_stage

    ifan = exports["ifan"]
    assert load_stage(ifan).runtime == "keras"  # the most faithful artifact by default
    onnx = load_stage(ifan, artifact="onnx")
    assert onnx.runtime == "onnx" and onnx.system == "ifan" and onnx.domain == 0
    assert set(onnx.spec.outputs) == {"landmarks", "parsing_logits", "emotion_logits"}
    with pytest.raises(ExportError, match="no artifact 'tflite_int8'"):
        load_stage(ifan, artifact="tflite_int8")
    # FaceAnalyzer takes an artifact path too, and answers as the Keras model does.
    photo = np.random.default_rng(1).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    ref = FaceAnalyzer(ifan)([photo])[0][0]
    got = FaceAnalyzer(_artifact(ifan, "tflite"))([photo])[0][0]
    np.testing.assert_allclose(got.landmarks, ref.landmarks, atol=0.05)
    np.testing.assert_allclose(got.attributes["emotion"], ref.attributes["emotion"], atol=1e-4)
