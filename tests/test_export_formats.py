"""Export of a small per-dataset-BN model to every format, each checked in its runtime.

The model is built from Keras layers and ``DomainBatchNorm`` (two domains with
different statistics, so the domain input visibly matters) and has the standard
output keys; the data are SynthFace shards read through the input pipeline.
"""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ExportError
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.serving import signatures as sig
from keras_facemt.serving.exporter import ExportOptions, export_model
from keras_facemt.serving.saved_model import (
    SavedModelRunner,
    rest_request,
    rest_request_to_inputs,
    run_saved_model_cli,
)
from keras_facemt.serving.verification_data import load_verification_data

SIZE = 32
FORMATS_ALL = ("keras", "saved_model", "tflite", "onnx")


def serving_spec_of_test_model():
    """The declaration of ``build_test_model``'s final outputs (an iFAN-like crop model)."""
    from keras_facemt.configs.outputs import OutputSpec, ServingSpec
    from keras_facemt.data import schema

    return ServingSpec({
        "landmarks": OutputSpec("landmarks", task="landmarks", scheme="mtfl5"),
        "parsing_logits": OutputSpec("parsing_logits", task="parsing", names=schema.PARSING_CLASSES,
                                     activation="softmax"),
        "emotion_logits": OutputSpec("class_logits", task="emotion", names=schema.EMOTIONS, activation="softmax"),
    })


def build_test_model(num_domains=2, seed=0):
    """A small multi-task model with the keras-facemt input/output contract."""
    from keras_facemt.models.model_info import ModelInfo, attach

    keras.utils.set_random_seed(seed)
    image = keras.Input((SIZE, SIZE, 3), name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(image)
    x = DomainBatchNorm(num_domains=num_domains, name="bn1")(x, domain=domain)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv2")(x)
    y = DomainBatchNorm(num_domains=num_domains, name="bn2")(y, domain=domain)
    y = keras.layers.ReLU()(y)
    pooled = keras.layers.GlobalAveragePooling2D()(y)
    landmarks = keras.layers.Reshape((5, 2), name="landmarks_shape")(
        keras.layers.Dense(10, activation="sigmoid", name="landmark_head")(pooled)
    )
    landmarks0 = keras.layers.Reshape((5, 2), name="landmarks0_shape")(
        keras.layers.Dense(10, activation="sigmoid", name="landmark_head0")(pooled)
    )
    parsing = keras.layers.Conv2D(11, 1, name="parsing_head")(x)
    emotion = keras.layers.Dense(7, name="emotion_head")(pooled)
    model = keras.Model(
        {"image": image, "domain": domain},
        {"landmarks": landmarks, "parsing_logits": parsing, "emotion_logits": emotion, "landmarks/iter_0": landmarks0},
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, DomainBatchNorm):
            # Distinct per-domain statistics: the domain id changes every output.
            c = layer.moving_mean.shape[-1]
            layer.moving_mean.assign(rng.normal(0, 0.3, (num_domains, c)).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, (num_domains, c)).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, (num_domains, c)).astype("float32"))
    # Decisive parsing logits, as a trained model has (ties would flip under int8 noise).
    head = model.get_layer("parsing_head")
    head.kernel.assign(head.kernel * 8.0)
    return attach(model, ModelInfo("export_test", {"num_domains": num_domains, "seed": seed}, serving_spec_of_test_model()))


@pytest.fixture(scope="module")
def synth_dirs(tmp_path_factory):
    from keras_facemt.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    dirs = []
    for name, domain in (("synth_a", "studio"), ("synth_b", "outdoor")):
        d = str(root / name)
        write_synthetic(
            d,
            tasks=("landmarks", "parsing", "emotion"),
            domain=domain,
            count=24,
            shards=1,
            image_size=SIZE,
            dataset_name=name,
            splits=(("train", 0.5), ("test", 0.5)),
            landmark_scheme="mtfl5",
        )
        dirs.append(d)
    return dirs


@pytest.fixture(scope="module")
def model():
    return build_test_model()


@pytest.fixture(scope="module")
def data(model, synth_dirs):
    return load_verification_data(model, synth_dirs, "test", 16, domains={"synth_a": 0, "synth_b": 1})


@pytest.fixture(scope="module")
def export(model, data, synth_dirs, tmp_path_factory):
    calibration = load_verification_data(model, synth_dirs, "train", 16, domains={"synth_a": 0, "synth_b": 1})
    out = str(tmp_path_factory.mktemp("exports") / "facemt_test")
    manifest = export_model(
        model,
        out,
        data,
        ExportOptions(model_name="testnet"),
        calibration=calibration,
        model_info={"system": "test", "domains": {"synth_a": 0, "synth_b": 1}},
        log=None,
    )
    return out, manifest


def test_verification_data_is_real_pipeline_output(data):
    image = data.inputs["image"]
    assert image.shape == (16, SIZE, SIZE, 3) and image.dtype == np.float32
    assert image.std() > 0.05  # real faces, not zeros
    assert set(np.unique(data.inputs["domain"])) == {0, 1}
    for key in ("landmarks", "has_landmarks", "parsing", "has_parsing", "attr/emotion", "has_attr/emotion"):
        assert key in data.labels, key


@pytest.mark.slow
def test_layout_manifest_and_all_checks_pass(export, model):
    out, _ = export
    sm = os.path.join(out, "saved_model", "testnet", "1", "saved_model.pb")
    assert os.path.exists(sm)
    for rel in (
        "model.keras",
        "manifest.json",
        "onnx/model.onnx",
        "tflite/model_float32.tflite",
        "tflite/model_float16.tflite",
        "tflite/model_dynamic.tflite",
        "tflite/model_int8.tflite",
    ):
        assert os.path.exists(os.path.join(out, rel)), rel
    on_disk = json.load(open(os.path.join(out, "manifest.json")))
    assert on_disk["verification"]["passed"] is True
    checks = on_disk["verification"]["checks"]
    runtimes = {c["runtime"] for c in checks}
    assert {"saved_model_cli", "tf.saved_model.load", "ai_edge_litert", "onnxruntime", "keras (safe_mode)"} <= runtimes
    cli_sigs = {c["artifact"].split(":")[-1] for c in checks if c["runtime"] == "saved_model_cli"}
    assert cli_sigs == set(sig.SIGNATURES)
    # Final outputs only by default; names are legal everywhere.
    assert on_disk["output_name_map"] == {
        "emotion_logits": "emotion_logits",
        "landmarks": "landmarks",
        "parsing_logits": "parsing_logits",
    }
    assert on_disk["outputs"]["parsing_logits"]["shape"] == [-1, SIZE, SIZE, 11]
    assert on_disk["inputs"]["serving_default"][1] == {"name": "domain", "dtype": "int32", "shape": [-1]}
    assert on_disk["preprocessing"]["channel_order"] == "RGB"
    assert on_disk["versions"]["keras"] == keras.__version__
    assert on_disk["training"]["domains"] == {"synth_a": 0, "synth_b": 1}
    for art in on_disk["artifacts"].values():
        assert art["size_bytes"] > 0 and art["verification"]
    int8 = on_disk["artifacts"]["tflite_int8"]
    assert int8["int8_ops"] > 0 and "full_integer" in int8
    float_checks = [c for c in checks if c["kind"] == "parity" and "float16" not in c["artifact"]]
    assert all(c["passed"] and max(e["relative_error"] for e in c["errors"].values()) <= 1e-4 for c in float_checks)
    metric_checks = {c["artifact"]: c for c in checks if c["kind"] == "metrics"}
    assert set(metric_checks) == {"tflite/model_dynamic.tflite", "tflite/model_int8.tflite"}
    for c in metric_checks.values():
        assert set(c["metrics"]) == {"landmarks", "parsing", "emotion"}
        assert all(m["reference"] == "labels" for m in c["metrics"].values())


@pytest.mark.slow
def test_existing_export_needs_overwrite(export, model, data):
    out, manifest = export
    with pytest.raises(ExportError, match="already exists.*--overwrite"):
        export_model(model, out, data, ExportOptions(formats=("keras",)), log=None)
    # Untouched by the refused attempt.
    assert json.load(open(os.path.join(out, "manifest.json")))["created"] == manifest["created"]


@pytest.mark.slow
def test_overwrite_replaces_atomically(model, data, tmp_path):
    out = str(tmp_path / "exp")
    first = export_model(model, out, data, ExportOptions(formats=("keras",)), log=None)
    second = export_model(model, out, data, ExportOptions(formats=("keras", "onnx"), overwrite=True), log=None)
    assert second["created"] != first["created"]
    assert sorted(os.listdir(tmp_path)) == ["exp"]  # no temporary or old directories left
    assert set(json.load(open(os.path.join(out, "manifest.json")))["artifacts"]) == {"keras", "onnx"}


@pytest.mark.slow
def test_rest_request_through_serve_image_bytes(export, model, data):
    out, _ = export
    sm = os.path.join(out, "saved_model", "testnet", "1")
    encoded = data.encoded_images()[:3]
    domains = [0, 1, 1]
    body = rest_request(list(encoded), domains)
    request = json.loads(body)
    assert request["signature_name"] == "serve_image_bytes"
    assert set(request["instances"][0]) == {"image_bytes", "domain"} and "b64" in request["instances"][0]["image_bytes"]
    inputs = rest_request_to_inputs(body, ["image_bytes", "domain"])
    served = run_saved_model_cli(sm, "serve_image_bytes", inputs)
    pixels = data.quantized_inputs()["image"][:3].astype(np.float32) / 255.0
    expected = model({"image": pixels, "domain": np.array(domains, np.int32)}, training=False)
    for key in ("landmarks", "emotion_logits", "parsing_logits"):
        np.testing.assert_allclose(
            served[key], np.asarray(expected[key]), atol=1e-4 * max(1, np.abs(expected[key]).max())
        )


@pytest.mark.slow
def test_image_bytes_that_are_not_an_image_give_a_clear_error(export, data):
    out, _ = export
    sm = os.path.join(out, "saved_model", "testnet", "1")
    good = data.encoded_images()[0]
    inputs = {
        "image_bytes": np.array([good, b"this is not an image"], dtype=object),
        "domain": np.array([0, 0], np.int32),
    }
    with pytest.raises(ExportError, match=r"element\]? \[?1\]?.*not a JPEG or PNG"):
        run_saved_model_cli(sm, "serve_image_bytes", inputs)
    runner = SavedModelRunner(sm, "serve_image_bytes")
    with pytest.raises(ExportError, match="not a JPEG or PNG"):
        runner(inputs)
    # The process (and the loaded model) keep working after the bad request.
    ok = runner({"image_bytes": np.array([good], dtype=object), "domain": np.array([0], np.int32)})
    assert ok["landmarks"].shape == (1, 5, 2)


@pytest.mark.slow
def test_saved_model_cli_show_lists_the_three_signatures(export):
    from keras_facemt.serving.saved_model import saved_model_cli_path

    out, _ = export
    sm = os.path.join(out, "saved_model", "testnet", "1")
    shown = subprocess.run(
        [saved_model_cli_path(), "show", "--dir", sm, "--tag_set", "serve"], capture_output=True, text=True, check=True
    ).stdout
    for name in sig.SIGNATURES:
        assert name in shown


@pytest.mark.slow
def test_onnx_has_dynamic_batch_and_opset_17(export, model, data):
    import onnx

    from keras_facemt.serving.onnx_export import OnnxRunner

    out, _ = export
    path = os.path.join(out, "onnx", "model.onnx")
    proto = onnx.load(path)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    runner = OnnxRunner(path)
    for n in (1, 5):
        feed = {"image": data.inputs["image"][:n], "domain": data.inputs["domain"][:n]}
        got = runner(feed)
        ref = model(feed, training=False)
        np.testing.assert_allclose(got["emotion_logits"], np.asarray(ref["emotion_logits"]), atol=1e-4)


def test_saved_model_stores_each_weight_once(export, model):
    """The SavedModel's checkpoint holds the served weights once (it held them twice,
    doubling TFN's paper SavedModel to 3 GB)."""
    import tensorflow as tf

    out, _ = export
    reader = tf.train.load_checkpoint(os.path.join(out, "saved_model", "testnet", "1", "variables", "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    stored = sum(int(np.prod(shape)) * dtypes[key].size for key, shape in reader.get_variable_to_shape_map().items()
                 if key != "_CHECKPOINTABLE_OBJECT_GRAPH")
    weights = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    assert 0.5 * weights < stored <= weights, (stored, weights)


def test_onnx_with_lifted_weights_matches_and_hands_tf2onnx_no_weights(export, model, data, tmp_path, monkeypatch):
    """The large-model path (weights lifted out before tf2onnx, re-attached as
    initializers) computes the same outputs, and the graph tf2onnx sees holds no
    constant of the lifted size; a file over protobuf's limit is refused, nothing written."""
    import tf2onnx

    from keras_facemt.errors import ExportError
    from keras_facemt.serving import onnx_export

    out, _ = export
    sm = os.path.join(out, "saved_model", "testnet", "1")
    monkeypatch.setattr(onnx_export, "LIFT_CONST_BYTES", 512)  # this model's conv kernels are 0.9 and 4.6 kB
    largest, convert = [], tf2onnx.convert.from_graph_def

    def spy(graph_def, **kwargs):
        largest.append(max(len(n.attr["value"].tensor.tensor_content) for n in graph_def.node if n.op == "Const"))
        return convert(graph_def, **kwargs)

    monkeypatch.setattr(tf2onnx.convert, "from_graph_def", spy)
    path = onnx_export.export_onnx(sm, str(tmp_path / "lifted.onnx"), lift_weights=True)
    assert largest and largest[0] < 512, largest
    direct = onnx_export.OnnxRunner(os.path.join(out, "onnx", "model.onnx"))
    lifted = onnx_export.OnnxRunner(path)
    feed = {"image": data.inputs["image"][:3], "domain": data.inputs["domain"][:3]}
    got, ref = lifted(feed), direct(feed)
    assert sorted(got) == sorted(ref) and lifted.input_names == direct.input_names
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(got["landmarks"], np.asarray(model(feed, training=False)["landmarks"]), atol=1e-4)
    monkeypatch.setattr(onnx_export, "PROTOBUF_LIMIT_BYTES", 1000)
    with pytest.raises(ExportError, match="2 GiB"):
        onnx_export.export_onnx(sm, str(tmp_path / "over.onnx"), lift_weights=True)
    assert sorted(os.listdir(tmp_path)) == ["lifted.onnx"]


@pytest.mark.slow
def test_tflite_int8_uint8_io_and_size(model, data, tmp_path):
    from keras_facemt.serving.tflite import TFLiteRunner

    out = str(tmp_path / "u8")
    manifest = export_model(
        model,
        out,
        data,
        ExportOptions(formats=("tflite",), quantizations=("float32", "int8"), int8_io="uint8"),
        log=None,
    )
    art = manifest["artifacts"]["tflite_int8"]
    assert art["io_dtype"] == "uint8"
    runner = TFLiteRunner(os.path.join(out, art["path"]))
    assert runner.input_details["image"]["dtype"] == np.uint8
    pixels = data.quantized_inputs()["image"][:8]
    domain = data.inputs["domain"][:8]
    got = runner({"image": pixels, "domain": domain})
    assert got["landmarks"].dtype == np.float32 and np.isfinite(got["landmarks"]).all()
    # Values, not only types: raw 8-bit pixels in, Keras's outputs on pixels / 255 out,
    # within int8's error (a few percent of each output's scale).
    ref = model({"image": pixels.astype(np.float32) / 255.0, "domain": domain}, training=False)
    for key in ("landmarks", "emotion_logits", "parsing_logits"):
        want = np.asarray(ref[key])
        scale = np.abs(want).max()
        assert np.abs(got[key] - want).max() <= 0.1 * scale, (key, np.abs(got[key] - want).max(), scale)
    assert art["size_bytes"] < manifest["artifacts"]["tflite_float32"]["size_bytes"]


@pytest.mark.slow
def test_tflite_size_breakdown_and_stripped_names_run_the_same(export, data):
    from keras_facemt.serving.tflite import TFLiteRunner, size_breakdown, strip_tensor_names

    out, manifest = export
    for q in ("float32", "int8"):
        art = manifest["artifacts"][f"tflite_{q}"]
        flat = open(os.path.join(out, art["path"]), "rb").read()
        parts = size_breakdown(flat)
        # The manifest records the same split; the parts add up to the file.
        assert {k: art[k] for k in ("constant_bytes", "name_bytes", "quantization_bytes", "structure_bytes")} == {
            k: parts[k] for k in ("constant_bytes", "name_bytes", "quantization_bytes", "structure_bytes")
        }
        assert parts["total_bytes"] == art["size_bytes"] == len(flat)
        assert parts["constant_bytes"] + parts["name_bytes"] + parts["quantization_bytes"] + parts[
            "structure_bytes"
        ] == len(flat)
        assert parts["name_bytes"] > 0 and parts["structure_bytes"] > 0
        assert (parts["quantization_bytes"] > 0) == (q == "int8")
        stripped = strip_tensor_names(flat)
        assert size_breakdown(stripped)["name_bytes"] == 0 and len(stripped) < len(flat)
        feed = {"image": data.inputs["image"][:3], "domain": data.inputs["domain"][:3]}
        want, got = TFLiteRunner(flat)(feed), TFLiteRunner(stripped)(feed)
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


@pytest.mark.slow
def test_domain_input_changes_outputs_and_frozen_export(model, data, tmp_path):
    from keras_facemt.serving.onnx_export import OnnxRunner
    from keras_facemt.serving.tflite import TFLiteRunner

    image = data.inputs["image"][:4]
    a = np.asarray(model({"image": image, "domain": np.zeros(4, np.int32)}, training=False)["landmarks"])
    b = np.asarray(model({"image": image, "domain": np.ones(4, np.int32)}, training=False)["landmarks"])
    assert np.abs(a - b).max() > 1e-3  # per-dataset BN matters

    out = str(tmp_path / "frozen")
    manifest = export_model(
        model,
        out,
        data,
        ExportOptions(
            formats=("saved_model", "tflite", "onnx"),
            quantizations=("float32",),
            frozen_domain=1,
            saved_model_cli=False,
        ),
        model_info={"domains": {"synth_a": 0, "synth_b": 1}},
        log=None,
    )
    assert manifest["training"]["frozen_domain"] == 1 and manifest["training"]["frozen_domain_name"] == "synth_b"
    assert [i["name"] for i in manifest["inputs"]["serving_default"]] == ["image"]
    sm = os.path.join(out, manifest["artifacts"]["saved_model"]["path"])
    runners = {
        "saved_model": SavedModelRunner(sm),
        "tflite": TFLiteRunner(os.path.join(out, "tflite", "model_float32.tflite")),
        "onnx": OnnxRunner(os.path.join(out, "onnx", "model.onnx")),
    }
    for name, runner in runners.items():
        got = runner({"image": image})["landmarks"]
        np.testing.assert_allclose(got, b, atol=1e-5, err_msg=name)
    # The REST body of a frozen export is the plain {"b64": ...} row form, through the graph loader.
    body = rest_request(list(data.encoded_images()[:2]))
    assert list(json.loads(body)["instances"][0]) == ["b64"]
    served = SavedModelRunner(sm, "serve_image_bytes")(rest_request_to_inputs(body, ["image_bytes"]))
    assert served["landmarks"].shape == (2, 5, 2)


@pytest.mark.slow
def test_per_iteration_outputs_map_to_legal_names(model, data, tmp_path):
    from keras_facemt.serving.tflite import TFLiteRunner

    out = str(tmp_path / "all")
    manifest = export_model(
        model, out, data, ExportOptions(formats=("tflite",), quantizations=("float32",), outputs="all"), log=None
    )
    assert manifest["output_name_map"]["landmarks/iter_0"] == "landmarks__iter_0"
    got = TFLiteRunner(os.path.join(out, "tflite", "model_float32.tflite"))(data.inputs)
    ref = model(data.inputs, training=False)["landmarks/iter_0"]
    np.testing.assert_allclose(got["landmarks__iter_0"], np.asarray(ref), atol=1e-5)


@pytest.mark.slow
def test_converter_output_with_nan_fails_the_export(model, data, tmp_path, monkeypatch):
    """A converter that exits 0 but writes a NaN-producing model fails, naming the file; nothing is left."""
    import keras_facemt.serving.tflite as tflite_module
    from keras_facemt.serving.saved_model import export_saved_model

    broken = build_test_model()
    broken.set_weights(model.get_weights())
    kernel = broken.get_layer("conv2").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    broken_sm = str(tmp_path / "broken_sm" / "1")
    export_saved_model(broken, broken_sm)
    real_convert = tflite_module.convert_tflite
    monkeypatch.setattr(tflite_module, "convert_tflite", lambda sm_dir, q, *a, **k: real_convert(broken_sm, q, *a, **k))
    out = str(tmp_path / "nan_export")
    with pytest.raises(ExportError, match=r"model_float32\.tflite.*NaN"):
        export_model(model, out, data, ExportOptions(formats=("tflite",), quantizations=("float32",)), log=None)
    assert not os.path.exists(out)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".nan_export")] == []


def test_model_the_runtime_rejects_fails_the_export(model, data, tmp_path, monkeypatch):
    import keras_facemt.serving.tflite as tflite_module

    monkeypatch.setattr(tflite_module, "convert_tflite", lambda *a, **k: b"TFL3 this is not a flatbuffer")
    out = str(tmp_path / "rejected")
    with pytest.raises(ExportError, match=r"model_float16\.tflite.*rejected"):
        export_model(model, out, data, ExportOptions(formats=("tflite",), quantizations=("float16",)), log=None)
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formats": ("keras", "caffe")}, "Unknown export format.*format='caffe'"),
        ({"quantizations": ("int4",)}, "Unknown TFLite quantization.*quantization='int4'"),
        ({"int8_io": "int16"}, "int8_io='int16'"),
        ({"opset": 13}, "opset >= 17"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ExportError, match=message):
        ExportOptions(**kwargs)


def test_representative_dataset_that_yields_nothing():
    from keras_facemt.serving.tflite import representative_samples
    from keras_facemt.serving.verify import VerificationData

    with pytest.raises(ExportError, match="representative dataset yielded no examples"):
        representative_samples(iter([]))
    with pytest.raises(ExportError, match="yielded no examples"):
        VerificationData.from_batches(iter([]), source="empty-split")


def test_int8_metric_loss_beyond_ten_percent_fails():
    from keras_facemt.serving.verify import compare_metrics

    rng = np.random.default_rng(0)
    target = rng.integers(0, 7, 40)
    reference = {"emotion_logits": np.eye(7)[target] * 5.0}
    labels = {"attr/emotion": target, "has_attr/emotion": np.ones(40)}
    degraded = reference["emotion_logits"].copy()
    degraded[:8] = np.roll(degraded[:8], 1, axis=-1)  # 8 of 40 now wrong: accuracy 1.0 -> 0.8
    check = compare_metrics("m.tflite", "ai_edge_litert", reference, {"emotion_logits": degraded}, labels, True,
                            serving_spec_of_test_model())
    assert not check.passed and "emotion" in check.message
    assert check.metrics["emotion"]["relative_loss"] == pytest.approx(0.2)
    slightly = reference["emotion_logits"].copy()
    slightly[:2] = np.roll(slightly[:2], 1, axis=-1)  # accuracy 1.0 -> 0.95
    assert compare_metrics("m.tflite", "ai_edge_litert", reference, {"emotion_logits": slightly}, labels, True,
                           serving_spec_of_test_model()).passed
    # Reported, not enforced (dynamic-range).
    assert compare_metrics("m.tflite", "ai_edge_litert", reference, {"emotion_logits": degraded}, labels, False,
                           serving_spec_of_test_model()).passed


def test_float_parity_tolerance_is_relative_to_output_scale():
    from keras_facemt.serving.verify import compare_outputs

    ref = {"x": np.array([[100.0, -50.0]])}
    assert compare_outputs("a", "r", ref, {"x": ref["x"] + 0.009}, 1e-4).passed
    bad = compare_outputs("a", "r", ref, {"x": ref["x"] + 0.011}, 1e-4)
    assert not bad.passed and "x" in bad.message
    assert not compare_outputs("a", "r", ref, {"x": np.full((1, 2), np.nan)}, 1e-4).passed
    # One value off among 10000 fails: every value is bounded, not a percentile.
    big = {"x": np.linspace(-1, 1, 10000)}
    spiked = big["x"].copy()
    spiked[5] += 0.05
    check = compare_outputs("a", "r", big, {"x": spiked}, 1e-2)
    assert not check.passed and check.errors["x"]["relative_error"] == pytest.approx(0.05)


def test_output_name_mapping():
    assert sig.signature_output_name("landmarks/iter_0") == "landmarks__iter_0"
    assert sig.signature_output_name("celeba/Smiling_logits") == "celeba__Smiling_logits"
    assert sig.output_name_map(["landmarks", "landmarks/iter_0"], "final") == {"landmarks": "landmarks"}
    with pytest.raises(ExportError, match="both map"):
        sig.output_name_map(["a/b", "a__b"], "all")
    with pytest.raises(ExportError, match="outputs='some'"):
        sig.output_name_map(["a"], "some")


@pytest.mark.slow
def test_verify_only_rechecks_an_export_and_catches_tampering(export, synth_dirs, tmp_path, capsys):
    import shutil

    from keras_facemt import cli

    out, _ = export
    assert (
        cli.main(
            [
                "export",
                "--verify-only",
                "--output",
                out,
                "--data",
                synth_dirs[0],
                "--examples",
                "4",
                "--skip-saved-model-cli",
            ]
        )
        == 0
    )
    assert "checks passed" in capsys.readouterr().out
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    onnx_path = os.path.join(copy, "onnx", "model.onnx")
    with open(onnx_path, "wb") as f:
        f.write(b"corrupted")
    assert (
        cli.main(
            [
                "export",
                "--verify-only",
                "--output",
                copy,
                "--data",
                synth_dirs[0],
                "--examples",
                "4",
                "--skip-saved-model-cli",
            ]
        )
        == 2
    )
    assert "onnx/model.onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_tf_serving_layout_loads_by_version(export):
    out, manifest = export
    base = os.path.join(out, manifest["artifacts"]["saved_model"]["model_base_path"])
    assert os.listdir(base) == ["1"]
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    assert set(loaded.signatures) == set(sig.SIGNATURES)


def test_shared_export_runner(model, data, tmp_path):
    from tests.helpers import run_export_test

    batch = {"image": data.inputs["image"][:4], "domain": data.inputs["domain"][:4]}
    manifest = run_export_test(model, [batch], tmp_path, formats=("keras", "onnx"))
    assert set(manifest["artifacts"]) == {"keras", "onnx"}
