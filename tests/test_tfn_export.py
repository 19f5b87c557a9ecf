import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.models import registry
from keras_facemt.models.tfn import model as tfn


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_deployable_graph_exports_with_builtin_ops_and_matches_in_each_runtime(tmp_path):
    """RPN, proposals, both NMS passes, gathered ROI crops and the three subnets in one
    graph convert to SavedModel, builtin-op TFLite and ONNX, each verified against Keras."""
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.verify import VerificationData

    cfg = dataclasses.replace(tfn.PRESETS["tiny"](), score_threshold=0.0)
    keras.utils.set_random_seed(0)
    system = registry.get_system("tfn")
    served = system.serving_model(system.build(cfg), cfg)
    rng = np.random.default_rng(0)
    data = VerificationData({"image": rng.uniform(0, 1, (3, 96, 96, 3)).astype("float32"),
                             "domain": np.zeros(3, "int32")}, {}, "random")
    manifest = export_model(served, str(tmp_path / "export"), data,
                            ExportOptions(formats=("saved_model", "tflite", "onnx"), quantizations=("float32",),
                                          saved_model_cli=False), log=None)
    runtimes = {}
    for art in manifest["artifacts"].values():
        for check, res in art.get("verification", {}).items():
            runtimes[check] = res["passed"]
    assert any("ai_edge_litert" in k for k in runtimes) and any("onnxruntime" in k for k in runtimes)
    assert all(runtimes.values()), runtimes
