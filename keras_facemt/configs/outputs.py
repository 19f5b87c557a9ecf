"""What a deployable model's outputs are and how an image becomes its input.

Every system declares, for the graph it deploys (``System.serving_spec(config)``),
each output key's *kind* and the preprocessing its input expects. Export
verification, the verification data, the detection checks, ``FaceAnalyzer``,
``facemt predict`` drawings, the serving signatures and the export manifest all read
this declaration; none of them guesses an output's meaning from its key name.

Kinds (shapes without the batch dimension; ``D`` = padded detections per image):

========================  ====================================================
``boxes``                 ``[D, 4]`` normalised (xmin, ymin, xmax, ymax)
``scores``                ``[D]`` detection confidence in [0, 1]
``count``                 ``[]`` valid detections per image (int)
``landmarks``             ``[K, 2]`` (or ``[D, K, 2]`` per face) normalised
                          (x, y) of ``scheme``
``parsing_logits``        ``[H, W, C]`` per-pixel class logits (``names``)
``class_logits``          ``[C]`` (or ``[D, C]``) logits of one categorical
                          attribute (``task``, class ``names``)
``multilabel``            ``[L]`` (or ``[D, L]``) independent labels ``names``
                          in [0, 1] (``activation`` says how to read them)
``regression``            ``[]`` / ``[1]`` (or per face) a value in ``unit``
``pose``                  ``[3]`` (or ``[D, 3]``) yaw, pitch, roll in degrees
``embedding``             ``[E]`` (or ``[D, E]``) identity descriptor, compared
                          by cosine
========================  ====================================================

The declaration is plain data with a JSON form (``to_json`` / ``from_json``), stored
in export manifests and inside ``.keras`` files, so a model file or an export says
what it is without its training run beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Tuple

from keras_facemt.errors import ConfigError

OUTPUT_KINDS = ("boxes", "scores", "count", "landmarks", "parsing_logits", "class_logits", "multilabel",
                "regression", "pose", "embedding", "visibility")
# Geometry kinds: normalised image coordinates, mapped back through a letterbox.
GEOMETRY_KINDS = ("boxes", "landmarks")
ACTIVATIONS = ("softmax", "sigmoid", "identity")
RESIZE_MODES = ("stretch", "letterbox")


def _bad(message: str, **received) -> None:
    got = ", ".join(f"{k}={v!r}" for k, v in received.items())
    raise ConfigError(f"{message} Received: {got}")


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One output key's meaning.

    Attributes:
        kind: one of ``OUTPUT_KINDS``.
        task: the schema task the output predicts and is scored against
            (``detection``, ``landmarks``, ``parsing``, an attribute name such as
            ``emotion``, ``identity``); None when it has no labelled metric.
        per_face: the output has a detection axis ``[batch, D, ...]``.
        scheme: landmark scheme (``mtfl5``, ``ibug68``, ``aflw21``) for ``landmarks``.
        names: class names (``class_logits``, ``parsing_logits``) or label names
            (``multilabel``), in output order.
        activation: how raw values become probabilities (``softmax`` for logits,
            ``sigmoid`` for multi-label logits, ``identity`` when already in [0, 1]
            or not a probability).
        unit: unit of a ``regression`` output (``years``).
        label: the schema task whose labels score the output when they are not
            ``task``'s own (TFN's ``age`` in years is scored against the 101-class
            ``age_class`` labels, whose class index is the age in years); None: ``task``.
    """

    kind: str
    task: Optional[str] = None
    per_face: bool = False
    scheme: Optional[str] = None
    names: Tuple[str, ...] = ()
    activation: str = "identity"
    unit: str = ""
    label: Optional[str] = None

    @property
    def label_task(self) -> Optional[str]:
        """The schema task whose labels score this output."""
        return self.label or self.task

    def __post_init__(self):
        if self.kind not in OUTPUT_KINDS:
            _bad(f"Unknown output kind; kinds: {OUTPUT_KINDS}.", kind=self.kind)
        if self.activation not in ACTIVATIONS:
            _bad(f"Unknown activation; choose from {ACTIVATIONS}.", activation=self.activation)
        if self.kind == "landmarks" and not self.scheme:
            _bad("A landmarks output needs its scheme.", scheme=self.scheme)
        if self.kind in ("class_logits", "multilabel") and not self.names:
            _bad(f"A {self.kind} output needs its class/label names.", names=self.names)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))

    def to_json(self) -> Dict[str, object]:
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
        if values["label"] is None:  # declarations without one read as they always have
            del values["label"]
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, object]) -> "OutputSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            _bad(f"Unknown output declaration field(s) {unknown}; fields: {sorted(fields)}.", keys=sorted(values))
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How any image becomes the model's ``image`` input.

    Attributes:
        resize: ``stretch`` (each axis scaled to the input size: crop models trained
            on face crops) or ``letterbox`` (scaled to fit, centred, zero padding:
            detectors trained on padded scenes, as Uniface Sec. IV-A).
        value_range: RGB values of the input (``(0, 1)``).
        align: ``"mtfl5"`` for models trained on faces aligned by their 5 points to
            ``ops.align``'s template at the input size (MTFR): given points, the
            analyzer warps each face the same way; without points an image is taken
            as an already aligned crop and stretched. None: no alignment.
        template_scale: where a crop model's training faces sit in its input, for
            pipelines that cut faces out of photos by their 5 points
            (``inference.pipeline``): ``ops.align``'s template at the input size,
            scaled about the input's centre by this factor. 1.0 for faces aligned to
            the template (MTFR); below 1 for crops that frame the face more loosely
            (a face box with a margin, as iFAN's crops).
        max_batch: the most images one forward pass should carry, for a graph whose
            memory grows with far more than its input (All-in-One's runs its network
            on every window of every image); runtimes and ``FaceAnalyzer`` split
            larger batches. None: no limit.
    """

    resize: str = "stretch"
    value_range: Tuple[float, float] = (0.0, 1.0)
    align: Optional[str] = None
    template_scale: float = 1.0
    max_batch: Optional[int] = None

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            _bad(f"Unknown resize mode; choose from {RESIZE_MODES}.", resize=self.resize)
        if self.align not in (None, "mtfl5"):
            _bad("Alignment is by the 5 mtfl5 points or none.", align=self.align)
        if not 0.1 <= float(self.template_scale) <= 4.0:
            _bad("template_scale is the face's size relative to the alignment template, in [0.1, 4].",
                 template_scale=self.template_scale)
        object.__setattr__(self, "template_scale", float(self.template_scale))
        if self.max_batch is not None and int(self.max_batch) < 1:
            _bad("max_batch is a number of images >= 1, or None.", max_batch=self.max_batch)
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))

    def batch_size(self, wanted: int) -> int:
        """``wanted`` images per forward pass, at most ``max_batch``."""
        return min(int(wanted), self.max_batch or int(wanted))


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """A deployable model's output declarations and input preprocessing.

    Attributes:
        outputs: output key -> ``OutputSpec`` (the deployed graph's final outputs).
        preprocessing: how an image becomes the input.
    """

    outputs: Mapping[str, OutputSpec]
    preprocessing: Preprocessing = Preprocessing()

    def __post_init__(self):
        outputs = {str(k): v for k, v in dict(self.outputs).items()}
        for key, spec in outputs.items():
            if not isinstance(spec, OutputSpec):
                _bad(f"Output {key!r} must be declared with an OutputSpec.", type=type(spec).__name__)
        object.__setattr__(self, "outputs", outputs)
        if self.detecting:
            missing = [k for k in ("boxes", "scores", "count") if not self.keys_of(k)]
            if missing:
                _bad(f"A detector declares boxes, scores and count outputs; missing kinds {missing}.",
                     outputs=sorted(outputs))

    @property
    def detecting(self) -> bool:
        """Whether the model finds faces (outputs ``boxes``) rather than reading one crop."""
        return bool(self.keys_of("boxes"))

    def keys_of(self, kind: str, per_face: Optional[bool] = None) -> Tuple[str, ...]:
        """Output keys of ``kind`` (optionally only per-face or only per-image ones), sorted."""
        return tuple(sorted(k for k, s in self.outputs.items()
                            if s.kind == kind and (per_face is None or s.per_face == per_face)))

    def key_of(self, kind: str, per_face: Optional[bool] = None) -> Optional[str]:
        """The single output key of ``kind`` or None.

        Raises:
            ConfigError: when several outputs have that kind.
        """
        keys = self.keys_of(kind, per_face)
        if len(keys) > 1:
            _bad(f"Several outputs of kind {kind!r}; name one.", keys=keys)
        return keys[0] if keys else None

    def tasks(self) -> Tuple[str, ...]:
        """Schema tasks the outputs predict, sorted."""
        return tuple(sorted({s.task for s in self.outputs.values() if s.task}))

    def renamed(self, names: Mapping[str, str]) -> "ServingSpec":
        """The declaration keyed by exported names (``names``: output key -> name);
        outputs without a name are left out."""
        return ServingSpec({names[k]: s for k, s in self.outputs.items() if k in names}, self.preprocessing)

    def select(self, keys) -> "ServingSpec":
        """The declaration restricted to ``keys`` (an export's chosen outputs)."""
        return ServingSpec({k: s for k, s in self.outputs.items() if k in set(keys)}, self.preprocessing)

    def to_json(self) -> Dict[str, object]:
        return {"outputs": {k: s.to_json() for k, s in sorted(self.outputs.items())},
                "preprocessing": {"resize": self.preprocessing.resize,
                                  "value_range": list(self.preprocessing.value_range),
                                  "align": self.preprocessing.align,
                                  "template_scale": self.preprocessing.template_scale,
                                  # omitted when unset: older declarations read as they always have
                                  **({"max_batch": self.preprocessing.max_batch}
                                     if self.preprocessing.max_batch is not None else {})}}

    @classmethod
    def from_json(cls, values: Mapping[str, object]) -> "ServingSpec":
        """Parses ``to_json`` output.

        Raises:
            ConfigError: naming the malformed part.
        """
        if not isinstance(values, Mapping) or not isinstance(values.get("outputs"), Mapping):
            _bad("A serving declaration is an object with an 'outputs' object.", value=str(values)[:80])
        pre = values.get("preprocessing") or {}
        return cls({k: OutputSpec.from_json(v) for k, v in values["outputs"].items()},
                   Preprocessing(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in pre.items()}))
