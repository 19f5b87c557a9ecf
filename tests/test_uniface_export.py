import keras
import numpy as np
import pytest

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
    inf = uniface.build_inference_from_config(uniface.build_model(cfg), cfg, roi_method="gather")
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
