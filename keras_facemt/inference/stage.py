"""``ModelStage``: one deployable model in any runtime, with its declaration.

A stage is what ``FaceAnalyzer`` and ``FacePipeline`` run: a function from a
prepared input batch (float32 ``[N, H, W, 3]`` in [0, 1], resized as the model
declares) to its declared outputs keyed by the model's output keys, plus what the
model is (``spec``: ``configs.outputs.ServingSpec``; input size; BN domain;
verification threshold when the model has one). The same model runs the same way
from any of its forms:

* a ``keras.Model`` built or loaded by keras-facemt, a ``.keras`` file, a run
  directory (``run_config.json`` + checkpoint or ``model.keras``);
* an export (``manifest.json`` beside the artifacts): the export directory (its
  ``model.keras``, else SavedModel, ONNX, TFLite float32, in that order, or the
  artifact named by ``artifact=``), or one artifact's path inside it (a ``.tflite``
  file, ``model.onnx``, the versioned SavedModel directory). The manifest's
  ``serving`` declaration, ``output_name_map`` and ``inputs`` say what the
  artifact's outputs are and whether it takes a ``domain`` input; the artifact runs
  in its own runtime (``serving.tflite.TFLiteRunner``, ``serving.onnx_export.
  OnnxRunner``, ``serving.saved_model.SavedModelRunner``) on its
  ``serving_default`` signature, which takes inputs prepared exactly as
  ``FaceAnalyzer`` prepares them for Keras.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from keras_facemt.configs.outputs import ServingSpec
from keras_facemt.errors import ConfigError, ExportError

MANIFEST = "manifest.json"
# Artifact picked from an export directory when none is named: the most faithful first.
DEFAULT_ARTIFACTS = ("keras", "saved_model", "onnx", "tflite_float32")


def deployable_model(model):
    """``model`` as the graph it deploys, with its ``ModelInfo``.

    Args:
        model: a ``keras.Model`` (built or loaded by keras-facemt), or a path to a
            ``.keras`` file, a run directory or a directory holding ``model.keras``.

    Returns:
        ``(model, info)``.

    Raises:
        ConfigError: when the model carries no ``ModelInfo`` (a plain Keras model,
            or a file saved by ``model.save`` outside a run directory).
    """
    from keras_facemt.models.model_info import info_of

    if isinstance(model, (str, os.PathLike)):
        from keras_facemt.serving.model_source import load_model_source

        model, _ = load_model_source(os.fspath(model))
    info = info_of(model)
    if info is None:
        raise ConfigError(
            "The model does not say which keras-facemt system it is: build it with keras_facemt.build_model, "
            "load it with keras_facemt.load_model, or pass a file saved by keras_facemt.save_model. "
            f"Received: model={getattr(model, 'name', type(model).__name__)!r}"
        )
    if not info.deployable:
        from keras_facemt.models.registry import get_system

        model = get_system(info.system).deployable(model, info)
        info = info_of(model)
    return model, info


class ModelStage:
    """A deployable model, its declaration and how to run it.

    Attributes:
        system: registered system name.
        spec: the output declaration, keyed by the model's output keys.
        input_size: ``(height, width)`` of the ``image`` input.
        domain: BN domain id fed to a ``domain`` input, or None when the model (or
            the artifact, with its domain frozen at export) takes none.
        runtime: ``keras``, ``saved_model``, ``tflite`` or ``onnx``.
        source: the path (or model name) the stage was loaded from.
        threshold: the cosine verification threshold chosen on held-out pairs, when
            the model's run (``results.json``) or export (``manifest.json``) records
            one; None otherwise.
        model: the ``keras.Model`` (``keras`` runtime) or None.
        info: the model's ``ModelInfo`` (``keras`` runtime) or None.
    """

    def __init__(self, run: Callable[[Dict[str, np.ndarray]], Mapping[str, np.ndarray]], system: str,
                 spec: ServingSpec, input_size: Tuple[int, int], domain: Optional[int], runtime: str,
                 source: str, threshold: Optional[float] = None, output_names: Optional[Mapping[str, str]] = None,
                 model=None, info=None):
        self._run = run
        self.system = system
        self.spec = spec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.domain = domain
        self.runtime = runtime
        self.source = source
        self.threshold = threshold
        self._names = dict(output_names or {k: k for k in spec.outputs})
        self.model = model
        self.info = info

    @property
    def detecting(self) -> bool:
        return self.spec.detecting

    @property
    def letterbox(self) -> bool:
        return self.spec.preprocessing.resize == "letterbox"

    def __call__(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """The declared outputs on a prepared batch.

        Args:
            batch: float32 ``[N, H, W, 3]`` at ``input_size``, values in [0, 1].

        Returns:
            output key -> ``[N, ...]`` array, for every declared output.
        """
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:3]) != self.input_size:
            raise ConfigError(f"{self.source}: expects a batch [N, {self.input_size[0]}, {self.input_size[1]}, 3]. "
                              f"Received: shape={batch.shape}")
        feed = {"image": batch}
        if self.domain is not None:
            feed["domain"] = np.full((len(batch),), self.domain, np.int32)
        out = self._run(feed)
        return {k: np.asarray(out[self._names[k]]) for k in self.spec.outputs}

    def describe(self) -> str:
        """``system (runtime) source`` for messages and reports."""
        return f"{self.system} ({self.runtime}) {self.source}"


def load_stage(source, domain: Union[int, str, None] = 0, artifact: Optional[str] = None,
               num_threads: int = 1) -> ModelStage:
    """Loads a model from any of its forms as a ``ModelStage``.

    Args:
        source: a ``keras.Model``, a ``ModelStage`` (returned as is), a ``.keras``
            file, a run directory, an export directory, or an artifact inside one.
        domain: BN domain of models with a ``domain`` input: an id or a training
            dataset name.
        artifact: with an export directory, the artifact id to run (``keras``,
            ``saved_model``, ``tflite_float32``, ``tflite_float16``,
            ``tflite_int8``, ``onnx``, ...).
        num_threads: CPU threads of the TFLite / ONNX runtimes.

    Raises:
        ConfigError, CheckpointError, ExportError: naming the source that is not a
            keras-facemt model, or the artifact the export lacks.
    """
    if isinstance(source, ModelStage):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(source))
        export_dir = _export_dir_of(path)
        if export_dir is not None:
            return _artifact_stage(export_dir, path, artifact, domain, num_threads)
        if artifact is not None:
            raise ConfigError(f"{source}: artifact= picks an artifact of an export directory (with {MANIFEST}); "
                              f"this is not one. Received: artifact={artifact!r}")
        return keras_stage_from_path(os.fspath(source), domain)
    return _keras_stage(source, domain)


def _export_dir_of(path: str) -> Optional[str]:
    """The export directory holding ``path`` (itself, or up to three levels up: an
    artifact such as ``saved_model/<name>/<version>``), or None."""
    here = path if os.path.isdir(path) else os.path.dirname(path)
    for _ in range(4):
        if os.path.isfile(os.path.join(here, MANIFEST)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return None


def _keras_stage(model, domain) -> ModelStage:
    from keras_facemt.models.model_info import resolve_domain

    where = f"{os.fspath(model)}: not a face model. " if isinstance(model, (str, os.PathLike)) else ""
    model, info = deployable_model(model)
    try:
        inputs = model.input
    except AttributeError:  # a model that was never built has no inputs
        inputs = {}
    if not isinstance(inputs, dict) or "image" not in inputs:
        raise ConfigError(f"{where}The model has no 'image' input. Received: inputs={inputs}")
    shape = tuple(inputs["image"].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ConfigError(f"{where}The model's image input needs a static size. Received: shape={shape}")
    takes_domain = "domain" in inputs
    # A model without a domain input has no use for one (a pipeline-wide domain name
    # need only be known to the stages that take it).
    resolved = resolve_domain(domain, dict(info.domains)) if takes_domain else None
    if takes_domain and resolved is None:
        raise ConfigError("domain must be an id or a training dataset name. Received: domain=None")

    def run(feed):
        out = model(feed, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    return ModelStage(run, info.system, info.serving, (int(shape[1]), int(shape[2])),
                      resolved if takes_domain else None, "keras", getattr(model, "name", "model"),
                      model=model, info=info)


def keras_stage_from_path(path: str, domain) -> ModelStage:
    """``load_stage`` of a ``.keras`` file or run directory, recording its path and threshold."""
    stage = _keras_stage(path, domain)
    stage.source = os.fspath(path)
    stage.threshold = run_threshold(os.fspath(path))
    return stage


def run_threshold(path: str) -> Optional[float]:
    """The verification threshold a run recorded (``results.json`` ``metrics.threshold``
    beside a ``.keras`` file or in a run directory), or None."""
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    results = os.path.join(directory, "results.json")
    if not os.path.isfile(results):
        return None
    try:
        with open(results) as f:
            value = (json.load(f).get("metrics") or {}).get("threshold")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def read_export_manifest(export_dir: str) -> Dict[str, object]:
    """An export's ``manifest.json``.

    Raises:
        ExportError: when it is not valid JSON or lacks the serving declaration.
    """
    path = os.path.join(export_dir, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise ExportError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("serving"), dict):
        raise ExportError(f"{path}: the manifest has no 'serving' declaration (exported by an older keras-facemt?); "
                          "re-export the model.")
    return manifest


def _artifact_stage(export_dir: str, path: str, artifact: Optional[str], domain, num_threads: int) -> ModelStage:
    from keras_facemt.models.model_info import resolve_domain

    manifest = read_export_manifest(export_dir)
    artifacts = manifest.get("artifacts") or {}
    if path != export_dir:
        rel = os.path.relpath(path, export_dir)
        found = [k for k, a in artifacts.items() if os.path.normpath(str(a.get("path"))) == os.path.normpath(rel)]
        if not found:
            raise ExportError(f"{path}: not an artifact of the export {export_dir}; its artifacts: "
                              f"{sorted(str(a.get('path')) for a in artifacts.values())}.")
        artifact = found[0]
    elif artifact is None:
        artifact = next((a for a in DEFAULT_ARTIFACTS if a in artifacts), None)
        if artifact is None:
            raise ExportError(f"{export_dir}: the export holds no runnable artifact. Received: "
                              f"artifacts={sorted(artifacts)}")
    if artifact not in artifacts:
        raise ExportError(f"{export_dir}: no artifact {artifact!r}; it holds {sorted(artifacts)}.")
    art = artifacts[artifact]
    art_path = os.path.join(export_dir, str(art["path"]))
    threshold = manifest.get("verification_threshold")
    threshold = float(threshold) if isinstance(threshold, (int, float)) else None
    if art.get("format") == "keras":
        stage = _keras_stage(art_path, domain)
        stage.source, stage.threshold = art_path, threshold
        return stage
    spec = ServingSpec.from_json(manifest["serving"])
    names = dict(manifest.get("output_name_map") or {})
    missing = sorted(set(spec.outputs) - set(names))
    if missing:
        raise ExportError(f"{export_dir}: declared outputs {missing} are not in the manifest's output_name_map.")
    inputs = {i["name"] for i in (manifest.get("inputs") or {}).get("serving_default", [])}
    takes_domain = "domain" in inputs
    resolved = resolve_domain(domain, dict((manifest.get("training") or {}).get("domains") or {})) \
        if takes_domain else None
    if takes_domain and resolved is None:
        raise ConfigError("domain must be an id or a training dataset name. Received: domain=None")
    fmt = art.get("format")
    if fmt == "tflite":
        from keras_facemt.serving.tflite import TFLiteRunner

        runner = TFLiteRunner(art_path, num_threads=num_threads)
        runtime = "tflite"
    elif fmt == "onnx":
        from keras_facemt.serving.onnx_export import OnnxRunner

        runner = OnnxRunner(art_path, num_threads=num_threads)
        runtime = "onnx"
    elif fmt == "saved_model":
        from keras_facemt.serving.saved_model import SavedModelRunner

        runner = SavedModelRunner(art_path)
        runtime = "saved_model"
    else:
        raise ExportError(f"{art_path}: artifact format {fmt!r} cannot be run. Received: artifact={artifact!r}")
    size = (manifest.get("preprocessing") or {}).get("input_size")
    if not size or len(size) != 2:
        raise ExportError(f"{export_dir}: the manifest has no preprocessing.input_size. Received: {size!r}")
    label = f"{runtime}" + (f" {art.get('quantization')}" if art.get("quantization") else "")
    return ModelStage(runner, str(manifest.get("system")), spec, (int(size[0]), int(size[1])),
                      resolved if takes_domain else None, label, art_path, threshold, names)
