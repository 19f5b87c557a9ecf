"""Configuration of the iFAN model (Li et al., MM'17, Sec. 3 and 4.1.2).

``IFANConfig`` is a plain frozen dataclass: ``model.build_model`` turns it into the
plain arguments of the layers. Every field is validated on construction; errors are
``ConfigError`` ending in ``Received: name=value``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from keras_facemt.data import schema
from keras_facemt.errors import ConfigError

# Tasks with a dedicated decoder / re-encoder pair (Sec. 4.1.2). Every other task must
# be a registered attribute of kind class/binary (the paper's "emotion" being one).
STRUCTURAL_TASKS: Tuple[str, ...] = ("landmarks", "parsing")
# Sec. 4.1.2: hot points are enlarged to a radius of 5 pixels on 128x128 heat maps.
PAPER_HEATMAP_RADIUS = 5.0
PAPER_IMAGE_SIZE = 128
# Where the integrator's feedback enters the backbone (``backbone.FCDenseNetBackbone``).
FEEDBACK_TARGETS: Tuple[str, ...] = ("first_conv", "every_block")


def attribute_num_classes(task: str) -> int:
    """Number of classes of an attribute task, from the schema registry.

    Raises:
        ConfigError: if ``task`` is not a registered class/binary attribute.
    """
    spec = schema.attribute_spec(task)
    if spec.kind not in ("class", "binary"):
        raise ConfigError(
            f"iFAN predicts categorical attributes only; attribute {task!r} has kind "
            f"{spec.kind!r}. Received: tasks=[{task!r}]"
        )
    return int(spec.num_classes)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class IFANConfig:
    """Sizes and switches of the integrated Face Analytics Network.

    Attributes:
        image_size: side S of the square input image (paper: 128).
        tasks: predicted tasks, any subset of ``"landmarks"``, ``"parsing"`` and the
            registered class/binary attributes (``"emotion"``, ``"gender"``, ...).
        iterations: ITER, the number of task-interaction iterations (Eq. 4); ``0`` is
            plain multi-task learning without re-encoders and integrator.
        num_domains: number of per-dataset BatchNorm statistic sets (Sec. 3.3).
        shared_bn: if True one BN domain is used everywhere (ablation, Sec. 4.3.3);
            the ``domain`` input is still accepted and ignored.
        frozen_domain: if set, every BN layer uses this domain and ignores the input
            (the export-time "freeze to one dataset" switch).
        reencoders: if False the learnable re-encoders are replaced by plain resizing
            of the predictions (ablation, Sec. 4.3.2).
        num_landmarks: K, landmarks regressed (MTFL: 5).
        num_parsing_classes: parsing classes (Helen: 11).
        num_levels: L, the number of down-sampling dense blocks (and of up-sampling
            ones); features span resolutions S, S/2, ..., S/2**L.
        layers_per_block: convolutions per dense block (paper: 3).
        growth_rate: channels each dense-block convolution adds (paper: 12).
        stem_filters: channels of the initial convolution.
        stem_kernel: kernel size of the initial convolution (paper: 7).
        heatmap_radius: radius in pixels of the landmark heat-map discs (paper: 5 at
            S=128). ``None`` scales the paper's radius with the input size,
            ``5 * image_size / 128`` (the ``small`` and ``tiny`` presets), so it
            follows an ``image_size`` override.
        reencoder_filters: channels of every level of a re-encoded feature pyramid.
        integrator_filters: channels of the integrated feature fed back per level.
        attribute_hidden: width of the fully connected layers of the attribute
            re-encoder.
        decoder_filters: channels the landmark / attribute decoders reduce their
            feature map to (1x1 conv) before the fully connected layers.
        decoder_hidden: width of the hidden fully connected decoder layer.
        dropout: dropout rate before the last fully connected decoder layer.
        feedback_to: where the integrated feedback enters the backbone:
            ``"first_conv"`` (default) the first convolution of every down block and
            of the coarsest up block; ``"every_block"`` every dense block, up path
            included (an investigation switch, ``reports/ifan_iterations.md``).
        iteration_bn: if True the backbone's BatchNorm keeps separate statistics
            per interaction iteration (and per dataset), gamma / beta shared by the
            iterations; off (default), the unrolled iterations share statistics.
    """

    image_size: int = 128
    tasks: Tuple[str, ...] = ("parsing", "landmarks", "emotion")
    iterations: int = 2
    num_domains: int = 3
    shared_bn: bool = False
    frozen_domain: Optional[int] = None
    reencoders: bool = True
    num_landmarks: int = 5
    num_parsing_classes: int = schema.NUM_PARSING_CLASSES
    num_levels: int = 5
    layers_per_block: int = 3
    growth_rate: int = 12
    stem_filters: int = 48
    stem_kernel: int = 7
    heatmap_radius: Optional[float] = 5.0
    reencoder_filters: int = 16
    integrator_filters: int = 16
    attribute_hidden: int = 64
    decoder_filters: int = 32
    decoder_hidden: int = 256
    dropout: float = 0.2
    feedback_to: str = "first_conv"
    iteration_bn: bool = False

    def __post_init__(self):
        tasks = self.tasks
        if isinstance(tasks, str):
            tasks = (tasks,)
        try:
            tasks = tuple(tasks)
        except TypeError:
            raise ConfigError(f"tasks must be a sequence of task names. Received: tasks={self.tasks!r}") from None
        object.__setattr__(self, "tasks", tasks)
        if not tasks:
            raise ConfigError(f"tasks must name at least one task. Received: tasks={list(tasks)}")
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"tasks must not repeat a task. Received: tasks={list(tasks)}")
        for task in tasks:
            if not isinstance(task, str):
                raise ConfigError(f"Task names must be strings. Received: tasks={list(tasks)}")
            if task in STRUCTURAL_TASKS:
                continue
            if task not in schema.ATTRIBUTES:
                raise ConfigError(
                    f"Unknown iFAN task {task!r}: use 'landmarks', 'parsing' or a registered "
                    f"class/binary attribute (e.g. 'emotion', 'gender'). Received: tasks={list(tasks)}"
                )
            if schema.ATTRIBUTES[task].kind not in ("class", "binary"):
                raise ConfigError(
                    f"iFAN predicts categorical attributes only; {task!r} is a "
                    f"{schema.ATTRIBUTES[task].kind} attribute. Received: tasks={list(tasks)}"
                )
        _check_int("image_size", self.image_size, 1)
        _check_int("iterations", self.iterations, 0)
        _check_int("num_domains", self.num_domains, 1)
        _check_int("num_landmarks", self.num_landmarks, 1)
        _check_int("num_parsing_classes", self.num_parsing_classes, 2)
        _check_int("num_levels", self.num_levels, 1)
        _check_int("layers_per_block", self.layers_per_block, 1)
        _check_int("growth_rate", self.growth_rate, 1)
        _check_int("stem_filters", self.stem_filters, 1)
        _check_int("stem_kernel", self.stem_kernel, 1)
        _check_int("reencoder_filters", self.reencoder_filters, 1)
        _check_int("integrator_filters", self.integrator_filters, 1)
        _check_int("attribute_hidden", self.attribute_hidden, 1)
        _check_int("decoder_filters", self.decoder_filters, 1)
        _check_int("decoder_hidden", self.decoder_hidden, 1)
        if self.stem_kernel % 2 == 0:
            raise ConfigError(f"stem_kernel must be odd. Received: stem_kernel={self.stem_kernel}")
        if self.image_size % (2**self.num_levels) != 0:
            raise ConfigError(
                f"image_size must be divisible by 2**num_levels = {2 ** self.num_levels}. "
                f"Received: image_size={self.image_size}"
            )
        if not isinstance(self.shared_bn, bool):
            raise ConfigError(f"shared_bn must be a bool. Received: shared_bn={self.shared_bn!r}")
        if self.feedback_to not in FEEDBACK_TARGETS:
            raise ConfigError(f"feedback_to must be one of {list(FEEDBACK_TARGETS)}. "
                              f"Received: feedback_to={self.feedback_to!r}")
        if not isinstance(self.iteration_bn, bool):
            raise ConfigError(f"iteration_bn must be a bool. Received: iteration_bn={self.iteration_bn!r}")
        if not isinstance(self.reencoders, bool):
            raise ConfigError(f"reencoders must be a bool. Received: reencoders={self.reencoders!r}")
        if self.frozen_domain is not None:
            if isinstance(self.frozen_domain, bool) or not isinstance(self.frozen_domain, int) or not (
                0 <= self.frozen_domain < self.bn_domains
            ):
                raise ConfigError(
                    f"frozen_domain must be None or an integer in [0, {self.bn_domains}). "
                    f"Received: frozen_domain={self.frozen_domain!r}"
                )
        if self.heatmap_radius is not None and (
            isinstance(self.heatmap_radius, bool) or not isinstance(self.heatmap_radius, (int, float))
            or not self.heatmap_radius > 0
        ):
            raise ConfigError(f"heatmap_radius must be > 0 pixels. Received: heatmap_radius={self.heatmap_radius!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout!r}")

    @property
    def bn_domains(self) -> int:
        """BN statistic sets actually built: 1 under ``shared_bn``."""
        return 1 if self.shared_bn else self.num_domains

    @property
    def heatmap_radius_px(self) -> float:
        """The landmark heat-map radius in pixels actually used."""
        if self.heatmap_radius is None:
            return PAPER_HEATMAP_RADIUS * self.image_size / PAPER_IMAGE_SIZE
        return float(self.heatmap_radius)

    @property
    def attribute_tasks(self) -> Tuple[str, ...]:
        """The configured attribute tasks, in ``tasks`` order."""
        return tuple(t for t in self.tasks if t not in STRUCTURAL_TASKS)

    def num_classes(self, task: str) -> int:
        """Number of classes of attribute ``task`` (from the schema registry)."""
        return attribute_num_classes(task)
