"""Export verification: every artifact in its runtime against the Keras model.

Each artifact is loaded by the runtime that will run it in production and fed
real examples from the input pipeline (never zeros):

* float32 formats (SavedModel through ``tf.saved_model.load`` and through
  ``saved_model_cli run``, the TF Serving graph loader, for each of the three
  signatures; TFLite float32; ONNX Runtime): every output within
  ``1e-4 x`` its scale (the largest absolute value the Keras model produces
  for that output on the same inputs).
* TFLite float16: every output within ``1e-2 x`` its scale. This holds for iFAN
  because its landmark heat maps have an anti-aliased rim
  (``ops/heatmaps.render_landmark_heatmaps``): with a hard "distance <=
  radius" threshold, float16 weight rounding moved a point by ~1e-4, flipped a
  boundary pixel, and the feedback moved a few logits by up to 1.6e-2 of their
  scale (float32 runtimes too, by 2e-3, on 768 examples of a trained model).
* TFLite dynamic-range and int8: the change of each task's own metric on
  held-out data -- landmark NME (inter-ocular), parsing overall F-score
  (iFAN/Smith et al. classes), attribute accuracy -- against the labels; int8
  fails when it loses more than 10% relative on any task. Where the held-out
  data carry no label of a task, the Keras model's own predictions are the
  reference (F-score/accuracy of agreement >= 0.9, NME to the Keras points
  <= 0.1).

Any artifact the runtime rejects, or that outputs NaN/Inf where Keras does not,
fails with a message naming the file. ``--verify-only`` re-runs all of this on
an existing export.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from keras_facemt.errors import ExportError
from keras_facemt.evaluation.declared_metrics import probabilities, score, scorer_for
from keras_facemt.serving import signatures as sig
from keras_facemt.serving.detection_checks import detection_task_metrics
from keras_facemt.serving.verification_rules import (  # noqa: F401  (limits are part of this module's API)
    AGREEMENT_FLOOR,
    AGREEMENT_NME_CEILING,
    EMBEDDING_MIN_COSINE,
    FLOAT16_TOLERANCE,
    FLOAT32_TOLERANCE,
    INT8_MAX_RELATIVE_LOSS,
    metric_entry,
    relative_loss,
)

_SCALE_FLOOR = 1e-6


@dataclasses.dataclass
class VerificationData:
    """Real examples for verification (inputs and labels as numpy arrays).

    Attributes:
        inputs: ``image`` float32 ``[N, H, W, 3]`` in [0, 1] and ``domain`` int32 ``[N]``.
        labels: the other batch keys (``landmarks``, ``has_landmarks``, ``parsing``, ...).
        source: where the examples came from (recorded in the manifest).
    """

    inputs: Dict[str, np.ndarray]
    labels: Dict[str, np.ndarray]
    source: str = "<arrays>"

    @property
    def num_examples(self) -> int:
        return int(self.inputs[sig.IMAGE].shape[0])

    @classmethod
    def from_batches(cls, batches: Iterable[Dict], max_examples: int = 32, source: str = "<batches>"):
        """Concatenates pipeline batches (dicts of tensors or arrays).

        Raises:
            ExportError: if the batches hold no example or no ``image``.
        """
        parts: Dict[str, List[np.ndarray]] = {}
        count = 0
        for batch in batches:
            if sig.IMAGE not in batch:
                raise ExportError(f"{source}: batches must hold an 'image' key. Received: keys={sorted(batch)}")
            n = int(np.shape(batch[sig.IMAGE])[0])
            take = min(n, max_examples - count)
            for key, value in batch.items():
                parts.setdefault(key, []).append(np.asarray(value)[:take])
            count += take
            if count >= max_examples:
                break
        if count == 0:
            raise ExportError(f"{source}: the verification data yielded no examples.")
        arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
        image = arrays.pop(sig.IMAGE).astype(np.float32)
        if not np.isfinite(image).all() or image.min() < -1e-3 or image.max() > 1 + 1e-3:
            raise ExportError(f"{source}: images must be float RGB in [0, 1] (the pipeline's output).")
        domain = arrays.pop(sig.DOMAIN, np.zeros((count,), np.int32)).astype(np.int32).reshape(-1)
        return cls({sig.IMAGE: image, sig.DOMAIN: domain}, arrays, source)

    def quantized_inputs(self) -> Dict[str, np.ndarray]:
        """Inputs rounded to 8 bits: the images the uint8 and bytes signatures see."""
        image = np.round(np.clip(self.inputs[sig.IMAGE], 0, 1) * 255.0).astype(np.uint8)
        return {sig.IMAGE: image, sig.DOMAIN: self.inputs[sig.DOMAIN]}

    def encoded_images(self) -> np.ndarray:
        """PNG bytes of the 8-bit images (lossless, so decoding gives the same pixels)."""
        from keras_facemt.data.codec import encode_image

        return np.array([encode_image(img, "png") for img in self.quantized_inputs()[sig.IMAGE]], dtype=object)


@dataclasses.dataclass
class Check:
    """The outcome of one artifact's verification.

    Attributes:
        artifact: what was checked, e.g. ``tflite/model_int8.tflite``.
        runtime: the runtime that ran it (``ai_edge_litert``, ``onnxruntime``, ...).
        kind: ``parity`` (outputs compared) or ``metrics`` (task metrics compared).
        passed: whether it met its criterion.
        message: one line on what failed or why it passed.
        errors: output name -> ``max_abs_error``, ``scale``, ``relative_error``, ``tolerance``.
        metrics: task -> metric name, keras value, export value, relative loss, reference.
    """

    artifact: str
    runtime: str
    kind: str
    passed: bool
    message: str = ""
    errors: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    metrics: Dict[str, Dict[str, object]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VerificationReport:
    """All checks of one export."""

    checks: List[Check] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> List[Check]:
        return [c for c in self.checks if not c.passed]

    def raise_if_failed(self) -> None:
        """Raises ExportError listing every failed artifact with its message."""
        bad = self.failures()
        if bad:
            lines = "; ".join(f"{c.artifact} [{c.runtime}]: {c.message}" for c in bad)
            raise ExportError(f"Export verification failed for {len(bad)} artifact(s): {lines}")

    def to_json(self) -> List[Dict[str, object]]:
        return [c.to_json() for c in self.checks]

    def table(self) -> str:
        """A plain-text table of the checks."""
        rows = [("artifact", "runtime", "check", "result", "detail")]
        for c in self.checks:
            rows.append((c.artifact, c.runtime, c.kind, "ok" if c.passed else "FAIL", c.message))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows)


# ----------------------------------------------------------------------------- reference
def keras_outputs(
    model,
    inputs: Dict[str, np.ndarray],
    names: Dict[str, str],
    frozen_domain: Optional[int] = None,
    batch_size: int = 16,
) -> Dict[str, np.ndarray]:
    """The Keras model's outputs under signature names (the reference of every check)."""
    io = sig.ModelIO.from_model(model)
    image = np.asarray(inputs[sig.IMAGE], np.float32)
    if image.dtype != np.float32 or image.max(initial=0) > 1.5:
        image = image.astype(np.float32)
    domain = np.asarray(inputs.get(sig.DOMAIN, np.zeros(len(image))), np.int32)
    if frozen_domain is not None:
        domain = np.full_like(domain, frozen_domain)
    chunks: Dict[str, List[np.ndarray]] = {name: [] for name in names.values()}
    for start in range(0, len(image), batch_size):
        feed = {sig.IMAGE: image[start : start + batch_size]}
        if io.has_domain:
            feed[sig.DOMAIN] = domain[start : start + batch_size]
        out = model(feed, training=False)
        for key, name in names.items():
            chunks[name].append(np.asarray(out[key]))
    return {name: np.concatenate(v, axis=0) for name, v in chunks.items()}


def signature_inputs(data: VerificationData, signature: str, takes_domain: bool) -> Dict[str, np.ndarray]:
    """The feed of one serving signature for ``data``."""
    if signature == sig.SERVING_DEFAULT:
        feed = {sig.IMAGE: data.inputs[sig.IMAGE]}
    elif signature == sig.SERVE_UINT8:
        feed = {sig.IMAGE: data.quantized_inputs()[sig.IMAGE]}
    elif signature == sig.SERVE_IMAGE_BYTES:
        feed = {sig.IMAGE_BYTES: data.encoded_images()}
    else:
        raise ExportError(f"Unknown signature {signature!r}.")
    if takes_domain:
        feed[sig.DOMAIN] = data.inputs[sig.DOMAIN]
    return feed


# ----------------------------------------------------------------------------- parity
def compare_outputs(
    artifact: str,
    runtime: str,
    reference: Dict[str, np.ndarray],
    outputs: Dict[str, np.ndarray],
    tolerance: float,
) -> Check:
    """Parity check: every value of every reference output within ``tolerance x scale``."""
    missing = sorted(set(reference) - set(outputs))
    if missing:
        return Check(
            artifact, runtime, "parity", False, f"outputs {missing} missing; the artifact returned {sorted(outputs)}"
        )
    errors, bad = {}, []
    for name, ref in sorted(reference.items()):
        got = np.asarray(outputs[name], np.float64)
        ref = np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            return Check(
                artifact,
                runtime,
                "parity",
                False,
                f"output {name!r} has shape {list(got.shape)}, Keras gives {list(ref.shape)}",
            )
        if not np.isfinite(got).all() and np.isfinite(ref).all():
            return Check(
                artifact, runtime, "parity", False, f"output {name!r} holds NaN/Inf where the Keras model is finite"
            )
        scale = max(float(np.abs(ref).max(initial=0.0)), _SCALE_FLOOR)
        err = float(np.abs(got - ref).max(initial=0.0))
        errors[name] = {"max_abs_error": err, "scale": scale, "relative_error": err / scale, "tolerance": tolerance}
        if err > tolerance * scale:
            bad.append(f"{name}: max |diff| {err:.3g} > {tolerance:g} x scale {scale:.3g}")
    worst = max(e["relative_error"] for e in errors.values())
    message = "; ".join(bad) if bad else f"max relative error {worst:.2e} <= {tolerance:g}"
    return Check(artifact, runtime, "parity", not bad, message, errors=errors)


# ----------------------------------------------------------------------------- task metrics
def _mean_cosine(a, b) -> float:
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.mean(np.sum(a * b, axis=1) / den)) if len(a) else float("nan")


def _multilabel_accuracy(spec, ref, exp, labels) -> Tuple[float, float, str, int]:
    """Mean per-label accuracy at 0.5 of the Keras and exported outputs, against the
    labels where the held-out data carry them, else against the Keras decisions."""
    from keras_facemt.data import batch as batch_keys

    ref_p, exp_p = probabilities(ref, spec.activation), probabilities(exp, spec.activation)
    k_acc, e_acc, count = [], [], 0
    for j, name in enumerate(spec.names):
        keep = np.asarray(labels.get(batch_keys.has_attr(name), np.zeros(len(ref)))).reshape(-1) > 0
        if batch_keys.attr(name) in labels and keep.any():
            target = np.asarray(labels[batch_keys.attr(name)]).reshape(-1)[keep] > 0.5
            k_acc.append(np.mean((ref_p[keep, j] > 0.5) == target))
            e_acc.append(np.mean((exp_p[keep, j] > 0.5) == target))
            count = max(count, int(keep.sum()))
    if k_acc:
        return float(np.mean(k_acc)), float(np.mean(e_acc)), "labels", count
    return 1.0, float(np.mean((exp_p > 0.5) == (ref_p > 0.5))), "keras", len(ref)


def task_metrics(
    outputs: Dict[str, np.ndarray], reference: Dict[str, np.ndarray], labels: Dict[str, np.ndarray], spec
) -> Dict[str, Dict[str, object]]:
    """Each declared output's task metric for the Keras and the exported outputs.

    Args:
        outputs, reference: the export's and the Keras model's outputs (by the keys of
            ``spec``).
        labels: the verification labels (may lack a task's labels).
        spec: ``ServingSpec`` of those outputs.

    Returns:
        task -> ``metric``, ``keras``, ``export``, ``relative_loss`` (positive =
        worse), ``limit``, ``reference`` (``labels`` or ``keras``), ``examples``.
    """
    from keras_facemt.data import batch as batch_keys

    if spec.detecting:
        return detection_task_metrics(outputs, reference, labels, spec)
    results: Dict[str, Dict[str, object]] = {}
    for name, out_spec in sorted(spec.outputs.items()):
        scorer = scorer_for(out_spec)
        if scorer is None or name not in reference:
            continue
        task_name = out_spec.task or name
        ref_all, exp_all = np.asarray(reference[name]), np.asarray(outputs[name])
        if scorer.metric == "cosine":
            cos = _mean_cosine(ref_all, exp_all)
            results[task_name] = metric_entry("cosine", 1.0, cos, 1.0 - cos, 1.0 - EMBEDDING_MIN_COSINE, "keras",
                                              len(ref_all))
            continue
        if scorer.metric == "mean_accuracy":
            k_val, e_val, source, count = _multilabel_accuracy(out_spec, ref_all, exp_all, labels)
            loss = relative_loss(k_val, e_val, True) if source == "labels" else 1.0 - e_val
            limit = INT8_MAX_RELATIVE_LOSS if source == "labels" else 1.0 - AGREEMENT_FLOOR
            results[task_name] = metric_entry(scorer.metric, k_val, e_val, loss, limit, source, count)
            continue
        keep = np.asarray(labels.get(scorer.presence_key, np.zeros(len(ref_all)))).reshape(-1) > 0
        if scorer.label_key in labels and keep.any():
            target = np.asarray(labels[scorer.label_key])[keep]
            ref_pred, exp_pred = ref_all[keep], exp_all[keep]
            source = "labels"
        else:
            keep = np.ones(len(ref_all), bool)
            ref_pred, exp_pred = ref_all, exp_all
            target = ref_pred.argmax(-1) if scorer.metric in ("accuracy", "overall_fscore") else ref_pred
            source = "keras"
        visible = None
        if scorer.metric == "nme" and source == "labels" and batch_keys.LANDMARKS_VISIBLE in labels:
            visible = np.asarray(labels[batch_keys.LANDMARKS_VISIBLE])[keep]
        k_val = score(out_spec, scorer, ref_pred, target, visible)
        e_val = score(out_spec, scorer, exp_pred, target, visible)
        if source == "keras":
            # The reference is perfect by construction; the loss is the distance from it.
            if scorer.higher_is_better:
                loss, limit = 1.0 - e_val, 1.0 - AGREEMENT_FLOOR
            elif scorer.metric == "nme":
                loss, limit = e_val, AGREEMENT_NME_CEILING
            else:  # an absolute error to the Keras values, relative to their spread
                spread = max(float(np.std(np.asarray(ref_pred, np.float64))), 1e-6)
                loss, limit = e_val / spread, INT8_MAX_RELATIVE_LOSS
        else:
            loss = relative_loss(k_val, e_val, scorer.higher_is_better)
            limit = INT8_MAX_RELATIVE_LOSS
        results[task_name] = metric_entry(scorer.metric, k_val, e_val, loss, limit, source, keep.sum())
    return results


def compare_metrics(
    artifact: str,
    runtime: str,
    reference: Dict[str, np.ndarray],
    outputs: Dict[str, np.ndarray],
    labels: Dict[str, np.ndarray],
    enforce: bool,
    spec,
) -> Check:
    """Quantized-model check: task metrics, failing (when ``enforce``) beyond the limit."""
    for name, ref in reference.items():
        if name not in outputs:
            return Check(artifact, runtime, "metrics", False, f"output {name!r} missing")
        if not np.isfinite(np.asarray(outputs[name], np.float64)).all() and np.isfinite(ref).all():
            return Check(
                artifact, runtime, "metrics", False, f"output {name!r} holds NaN/Inf where the Keras model is finite"
            )
    metrics = task_metrics(outputs, reference, labels, spec)
    bad = [t for t, m in metrics.items() if not (m["relative_loss"] <= m["limit"])]
    parts = [f"{t} {m['metric']} {m['keras']:.4g}->{m['export']:.4g} ({m['reference']})" for t, m in metrics.items()]
    if not metrics:
        parts = ["no task output to score; reported parity only"]
    passed = not (enforce and bad)
    message = "; ".join(parts)
    if enforce and bad:
        message = "loses more than the limit on " + ", ".join(bad) + ": " + message
    check = compare_outputs(artifact, runtime, reference, outputs, tolerance=math.inf)
    return Check(artifact, runtime, "metrics", passed, message, errors=check.errors, metrics=metrics)


def parity_or_metrics(
    artifact: str,
    runtime: str,
    reference: Dict[str, np.ndarray],
    outputs: Dict[str, np.ndarray],
    tolerance: float,
    labels: Dict[str, np.ndarray],
    spec,
) -> Check:
    """Parity, or, where the outputs differ, the task metrics with the quantized limits
    (enforced); the message says which judged and why."""
    same = compare_outputs(artifact, runtime, reference, outputs, tolerance)
    if same.passed:
        return same
    judged = compare_metrics(artifact, runtime, reference, outputs, labels, enforce=True, spec=spec)
    return dataclasses.replace(judged, message=f"padded outputs differ ({same.message}); judged by task metrics: "
                                               f"{judged.message}")


def loaded_once(load: Callable[[], Callable]) -> Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]:
    """A runner that loads its artifact (``load()``) on the first call and reuses it for
    every later batch (``in_batches``), instead of one interpreter or session per batch."""
    held: List[Callable] = []

    def run(feed):
        if not held:
            held.append(load())
        return held[0](feed)

    return run


def in_batches(runner: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]], feed: Dict[str, np.ndarray],
               batch: Optional[int]) -> Dict[str, np.ndarray]:
    """``runner(feed)``, called on ``batch`` examples at a time (all at once for None),
    outputs concatenated along the batch axis."""
    n = len(next(iter(feed.values())))
    if batch is None or n <= batch:
        return runner(feed)
    parts = [runner({k: v[s:s + batch] for k, v in feed.items()}) for s in range(0, n, batch)]
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def run_check(
    artifact: str,
    runtime: str,
    runner: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]],
    feed: Dict[str, np.ndarray],
    judge: Callable[[Dict[str, np.ndarray]], Check],
    batch: Optional[int] = None,
) -> Check:
    """Runs ``runner`` on ``feed`` (``batch`` examples a call, when given) and judges its
    outputs; a runtime error is a failed check."""
    try:
        outputs = in_batches(runner, feed, batch)
    except ExportError as e:
        return Check(artifact, runtime, "parity", False, str(e))
    except Exception as e:  # a runtime's own exception type: still a failed artifact
        return Check(artifact, runtime, "parity", False, f"{type(e).__name__}: {e}")
    return judge(outputs)


# ----------------------------------------------------------------------------- whole export
def verify_artifacts(
    root: str,
    artifacts: Dict[str, Dict[str, object]],
    model,
    names: Dict[str, str],
    data: VerificationData,
    frozen_domain: Optional[int] = None,
    heldout: Optional[VerificationData] = None,
    saved_model_cli: bool = True,
    spec=None,
) -> VerificationReport:
    """Verifies every artifact of an export directory in its runtime.

    Args:
        root: the export directory.
        artifacts: the manifest's ``artifacts`` section (artifact id -> ``path``,
            ``format``, ``quantization``, ...); paths are relative to ``root``.
        model: the Keras reference model.
        names: output key -> signature output name.
        data: real examples for the parity checks.
        frozen_domain: the domain frozen at export (None: the domain is an input).
        heldout: labelled held-out examples for the quantized checks (default ``data``).
        saved_model_cli: also run each signature through ``saved_model_cli run``.
        spec: the model's ``ServingSpec`` (default: the one its ``ModelInfo`` carries),
            which says how each output is scored.

    Returns:
        The report (``raise_if_failed`` turns failures into an ExportError).
    """
    import os

    from keras_facemt.serving.onnx_export import OnnxRunner
    from keras_facemt.serving.saved_model import SavedModelCliRunner, SavedModelRunner
    from keras_facemt.serving.tflite import TFLiteRunner

    from keras_facemt.models.model_info import serving_spec_of

    heldout = heldout or data
    scored = (spec or serving_spec_of(model)).renamed(names)
    io = sig.ModelIO.from_model(model)
    takes_domain = io.has_domain and frozen_domain is None
    report = VerificationReport()
    preprocessing = (spec or serving_spec_of(model)).preprocessing
    max_batch, batch = preprocessing.max_batch, preprocessing.batch_size(16)
    ref = keras_outputs(model, data.inputs, names, frozen_domain, batch)
    ref_q = keras_outputs(
        # float32(x) / float32(255), as the signatures compute it: a graph with thresholds
        # (a detector's score cut, NMS) can flip on the last bit of a pixel.
        model, {**data.quantized_inputs(), sig.IMAGE: data.quantized_inputs()[sig.IMAGE].astype(np.float32)
                / np.float32(255.0)}, names, frozen_domain,
        batch,
    )
    ref_heldout = ref if heldout is data else keras_outputs(model, heldout.inputs, names, frozen_domain, batch)
    check = functools.partial(run_check, batch=max_batch)
    float_feed = signature_inputs(data, sig.SERVING_DEFAULT, takes_domain)

    def parity(artifact, runtime, reference, tol):
        return lambda out: compare_outputs(artifact, runtime, reference, out, tol)

    for art_id, art in sorted(artifacts.items()):
        fmt = art.get("format")
        path = os.path.join(root, str(art["path"]))
        rel = str(art["path"])
        if fmt == "keras":
            from keras_facemt.serving.keras_format import load_model

            run_keras = loaded_once(lambda path=path: functools.partial(
                keras_outputs, load_model(path), names=names, frozen_domain=frozen_domain, batch_size=batch))

            report.checks.append(
                check(
                    rel,
                    "keras (safe_mode)",
                    run_keras,
                    data.inputs,
                    parity(rel, "keras (safe_mode)", ref, FLOAT32_TOLERANCE),
                )
            )
        elif fmt == "saved_model":
            report.checks.append(
                check(
                    f"{rel}:{sig.SERVING_DEFAULT}",
                    "tf.saved_model.load",
                    loaded_once(lambda path=path: SavedModelRunner(path)),
                    float_feed,
                    parity(f"{rel}:{sig.SERVING_DEFAULT}", "tf.saved_model.load", ref, FLOAT32_TOLERANCE),
                )
            )
            if saved_model_cli:
                for signature in art.get("signatures", sig.SIGNATURES):
                    reference = ref if signature == sig.SERVING_DEFAULT else ref_q
                    feed = signature_inputs(data, signature, takes_domain)
                    label = f"{rel}:{signature}"
                    judge = parity(label, "saved_model_cli", reference, FLOAT32_TOLERANCE)
                    if signature != sig.SERVING_DEFAULT and scored.detecting:
                        # The signature's own x / 255 may round a pixel's last bit otherwise (a division
                        # by a constant becomes a multiplication); a detector's thresholds can flip on it.
                        judge = functools.partial(parity_or_metrics, label, "saved_model_cli", reference,
                                                  tolerance=FLOAT32_TOLERANCE, labels=data.labels, spec=scored)
                    report.checks.append(check(label, "saved_model_cli", SavedModelCliRunner(path, signature), feed,
                                               judge))
        elif fmt == "tflite":
            quant = art.get("quantization")
            io_dtype = art.get("io_dtype", "float32")

            runner = loaded_once(lambda path=path: TFLiteRunner(path))

            if quant == "float16" and scored.detecting:
                # A detector's thresholds (scores, top-k, NMS) can move a borderline detection under
                # float16 weights, which misaligns every padded row after it: the task metrics judge.
                feed = signature_inputs(heldout, sig.SERVING_DEFAULT, takes_domain)
                report.checks.append(
                    check(rel, "ai_edge_litert", runner, feed,
                          lambda out, rel=rel: parity_or_metrics(rel, "ai_edge_litert", ref_heldout, out,
                                                                 FLOAT16_TOLERANCE, heldout.labels, scored))
                )
            elif quant in ("float32", "float16"):
                tol = FLOAT16_TOLERANCE if quant == "float16" else FLOAT32_TOLERANCE
                report.checks.append(
                    check(rel, "ai_edge_litert", runner, float_feed, parity(rel, "ai_edge_litert", ref, tol))
                )
            else:
                feed = signature_inputs(heldout, sig.SERVING_DEFAULT, takes_domain)
                if io_dtype == "uint8":
                    feed[sig.IMAGE] = heldout.quantized_inputs()[sig.IMAGE]
                report.checks.append(
                    check(
                        rel,
                        "ai_edge_litert",
                        runner,
                        feed,
                        lambda out, rel=rel, quant=quant: compare_metrics(
                            rel, "ai_edge_litert", ref_heldout, out, heldout.labels, enforce=quant == "int8",
                            spec=scored,
                        ),
                    )
                )
        elif fmt == "onnx":
            report.checks.append(
                check(
                    rel,
                    "onnxruntime",
                    loaded_once(lambda path=path: OnnxRunner(path)),
                    float_feed,
                    parity(rel, "onnxruntime", ref, FLOAT32_TOLERANCE),
                )
            )
        else:
            report.checks.append(Check(rel, "-", "parity", False, f"unknown artifact format {fmt!r} ({art_id})"))
    return report
