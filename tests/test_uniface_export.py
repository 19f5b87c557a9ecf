import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from keras_facemt.models import registry
from keras_facemt.models.uniface import model as uniface


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_single_network_exports_with_builtin_ops_and_matches_in_each_runtime(tmp_path):
    """The whole inference graph (detection, NMS, landmark attention) on the gather ROI path
    converts to SavedModel, builtin-op TFLite and ONNX, each verified against Keras."""
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.verify import VerificationData

    cfg = uniface.PRESETS["tiny"]()
    keras.utils.set_random_seed(0)
    system = registry.get_system("uniface")
    inf = system.serving_model(system.build(cfg), cfg)
    rng = np.random.default_rng(0)
    data = VerificationData({"image": rng.uniform(0, 1, (3, 96, 96, 3)).astype("float32"),
                             "domain": np.zeros(3, "int32")}, {}, "random")
    manifest = export_model(inf, str(tmp_path / "export"), data,
                            ExportOptions(formats=("saved_model", "tflite", "onnx"), quantizations=("float32",),
                                          saved_model_cli=False), log=None)
    runtimes = {}
    for name, art in manifest["artifacts"].items():
        for check, res in art.get("verification", {}).items():
            runtimes[check] = res["passed"]
    assert any("ai_edge_litert" in k for k in runtimes) and any("onnxruntime" in k for k in runtimes)
    assert all(runtimes.values()), runtimes


@pytest.mark.timeout(300)
def test_teacher_tool_runs_an_onnx_teacher(tmp_path):
    from keras_facemt.models.uniface.teacher import build_teacher
    from keras_facemt.serving.onnx_export import export_onnx
    from tfrecords_tools.add_teacher_embeddings import load_embedding_model

    keras.utils.set_random_seed(0)
    m = build_teacher(32, (8,), 6, dropout=0.0)
    sm = str(tmp_path / "teacher_sm")
    m.export(sm, verbose=False)
    path = export_onnx(sm, str(tmp_path / "teacher.onnx"))
    fn, size = load_embedding_model(path)
    crops = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    assert size == 32
    np.testing.assert_allclose(fn(crops), m(crops).numpy(), atol=1e-5)


def _photo(height=480, width=640, seed=0):
    """A photo-sized, non-square scene: SynthFace faces pasted on a textured background."""
    from keras_facemt.data.synthetic import SynthFace

    rng = np.random.default_rng(seed)
    photo = (rng.uniform(60, 160, (height, width, 3))).astype(np.uint8)
    synth = SynthFace(image_size=160, seed=seed)
    for k, (x, y, side) in enumerate([(40, 60, 200), (330, 120, 150), (500, 300, 120)]):
        face, _ = synth.render_crop(k)
        import cv2

        photo[y:y + side, x:x + side] = cv2.resize(face, (side, side))
    return photo


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_serve_image_bytes_letterboxes_like_face_analyzer_on_a_640x480_photo(tmp_path):
    """Uniface declares letterbox preprocessing: the SavedModel's serve_image_bytes
    letterboxes a 640x480 JPEG/PNG in graph and returns boxes in the original image's
    normalised coordinates, the same faces (within 1 px) FaceAnalyzer finds on the
    exported model.keras, which knows its system without any run_config.json."""
    import cv2

    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.saved_model import SavedModelRunner
    from keras_facemt.serving.verify import VerificationData

    cfg = dataclasses.replace(uniface.PRESETS["tiny"](), score_threshold=0.2)
    keras.utils.set_random_seed(3)
    system = registry.get_system("uniface")
    served = system.serving_model(system.build(cfg), cfg)
    rng = np.random.default_rng(0)
    data = VerificationData({"image": rng.uniform(0, 1, (2, 96, 96, 3)).astype("float32"),
                             "domain": np.zeros(2, "int32")}, {}, "random")
    out = str(tmp_path / "export")
    export_model(served, out, data, ExportOptions(formats=("keras", "saved_model"), saved_model_cli=False), log=None)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["preprocessing"]["resize"] == "letterbox"
    assert manifest["serving"]["outputs"]["boxes"]["kind"] == "boxes"

    photo = _photo()
    ok, png = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    runner = SavedModelRunner(os.path.join(out, manifest["artifacts"]["saved_model"]["path"]), "serve_image_bytes")
    got = runner({"image_bytes": np.array([png.tobytes()], dtype=object)})
    n = int(got["num_detections"][0])
    served_boxes = got["boxes"][0, :n] * np.array([640, 480, 640, 480], np.float32)
    served_points = got["landmarks"][0, :n] * np.array([640, 480], np.float32)

    faces = FaceAnalyzer(os.path.join(out, "model.keras"))([photo])[0]
    assert n == len(faces) > 0
    analyzer_boxes = np.stack([f.box for f in faces])
    # Same detections in the same (score) order, within a pixel of the 640x480 photo.
    np.testing.assert_allclose(served_boxes, analyzer_boxes, atol=1.0)
    np.testing.assert_allclose(served_points, np.stack([f.landmarks for f in faces]), atol=1.0)
    # The padding is invisible: geometry spans the photo, not the 96x72 content of the input.
    assert served_boxes[:, 3].max() > 96

    # serve_uint8 takes the photo at its own size and answers the same.
    uint8 = SavedModelRunner(os.path.join(out, manifest["artifacts"]["saved_model"]["path"]), "serve_uint8")
    got8 = uint8({"image": photo[None]})
    np.testing.assert_allclose(got8["boxes"][0, :n] * np.array([640, 480, 640, 480]), served_boxes, atol=1.0)
