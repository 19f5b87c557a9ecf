"""Serving signatures: the model's input/output contract and the three entry points.

Every keras-facemt model takes ``{"image": float32 [batch, H, W, 3] RGB in [0, 1],
"domain": int32 [batch]}`` (``domain`` only with per-dataset BN) and returns a dict
with stable keys. Serving exposes it three ways (TF Serving signature names):

* ``serving_default``: ``image`` float32 ``[batch, H, W, 3]`` in [0, 1].
* ``serve_uint8``: ``image`` uint8 ``[batch, H, W, 3]`` (0..255), divided by 255.
* ``serve_image_bytes``: ``image_bytes`` string ``[batch]`` of encoded JPEG/PNG
  (the form a REST ``{"instances": [{"b64": ...}]}`` request reaches the server
  in), decoded to RGB inside the graph (gray -> 3 channels, alpha dropped), each
  image of any size.

Both 8-bit signatures bring an image to ``H x W`` the way the system declares
(``configs.outputs.Preprocessing``, the same ``data.letterbox.resize_to_input``
the training pipeline and ``FaceAnalyzer`` use): stretched for crop models,
letterboxed for detectors. For a letterboxing system ``serve_uint8`` takes images
of any size (``[batch, h, w, 3]``, one size per request) and both signatures return
geometry outputs (boxes, points) in normalised coordinates of the *original* image,
so a client never sees the padding; ``serving_default`` takes the prepared input and
returns input coordinates.

Each takes ``domain`` int32 ``[batch]`` too unless the export froze one domain.

Output keys such as ``landmarks/iter_0`` are not legal signature output names in
every runtime ("/" is a name-scope separator for TFLite and ONNX), so they are
mapped deterministically (``/`` -> ``__``, any other character outside
``[A-Za-z0-9_.-]`` -> ``_``) and the mapping is recorded in the manifest.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Optional, Sequence, Tuple

from keras_facemt.configs.outputs import GEOMETRY_KINDS
from keras_facemt.data.letterbox import input_to_source, resize_to_input
from keras_facemt.errors import ExportError

SERVING_DEFAULT = "serving_default"
SERVE_UINT8 = "serve_uint8"
SERVE_IMAGE_BYTES = "serve_image_bytes"
SIGNATURES = (SERVING_DEFAULT, SERVE_UINT8, SERVE_IMAGE_BYTES)
OUTPUT_SELECTIONS = ("final", "all")

IMAGE = "image"
DOMAIN = "domain"
IMAGE_BYTES = "image_bytes"

# Magic numbers of the encodings ``serve_image_bytes`` accepts.
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG"

PREPROCESSING = {
    "channel_order": "RGB",
    "layout": "NHWC",
    "normalization": "x / 255 (float inputs already in [0, 1])",
    "value_range": [0.0, 1.0],
    "image_bytes_formats": ["jpeg", "png"],
}
RESIZE_DESCRIPTIONS = {
    "stretch": "each axis scaled to the input size, bilinear with antialiasing (serve_uint8 and "
               "serve_image_bytes do it in graph; serving_default takes prepared inputs)",
    "letterbox": "scaled to fit with the aspect ratio kept, placed top-left, zero padding right and "
                 "bottom, bilinear with antialiasing; serve_uint8 and serve_image_bytes take any size "
                 "and return boxes/points in normalised coordinates of the original image; "
                 "serving_default takes letterboxed inputs and returns input coordinates",
}


def signature_output_name(key: str) -> str:
    """Maps a model output key to a name legal in every runtime.

    Example:
        >>> signature_output_name("landmarks/iter_0")
        'landmarks__iter_0'
    """
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key.replace("/", "__"))


def output_name_map(keys: Sequence[str], selection: str = "final") -> Dict[str, str]:
    """Model output key -> signature output name for the exported outputs.

    Args:
        keys: the model's output keys.
        selection: ``final`` (keys without a ``/``: the last iteration's outputs)
            or ``all`` (per-iteration outputs too).

    Raises:
        ExportError: for an unknown selection, or two keys mapping to one name.
    """
    if selection not in OUTPUT_SELECTIONS:
        raise ExportError(
            f"Unknown output selection; choose one of {OUTPUT_SELECTIONS}. Received: outputs={selection!r}"
        )
    chosen = [k for k in keys if selection == "all" or "/" not in k]
    if not chosen:
        raise ExportError(f"No model outputs selected by outputs={selection!r}. Received: keys={list(keys)}")
    mapping: Dict[str, str] = {}
    for key in sorted(chosen):
        name = signature_output_name(key)
        clash = [k for k, v in mapping.items() if v == name]
        if clash:
            raise ExportError(f"Output keys {clash[0]!r} and {key!r} both map to signature name {name!r}.")
        mapping[key] = name
    return mapping


@dataclasses.dataclass(frozen=True)
class ModelIO:
    """What serving needs to know about a model's inputs and outputs.

    Attributes:
        image_size: (height, width) of the ``image`` input.
        has_domain: whether the model takes a ``domain`` input.
        output_shapes: output key -> shape without the batch dimension.
    """

    image_size: Tuple[int, int]
    has_domain: bool
    output_shapes: Dict[str, Tuple[int, ...]]

    @classmethod
    def from_model(cls, model) -> "ModelIO":
        """Reads the contract from a functional model with dict inputs/outputs.

        Raises:
            ExportError: if the model does not follow the keras-facemt contract.
        """
        inputs = model.input
        outputs = model.output
        if not isinstance(inputs, dict) or IMAGE not in inputs:
            raise ExportError(
                "A keras-facemt model takes a dict input with an 'image' key. "
                f"Received: inputs={inputs if not isinstance(inputs, dict) else list(inputs)}"
            )
        extra = sorted(set(inputs) - {IMAGE, DOMAIN})
        if extra:
            raise ExportError(f"Model inputs must be 'image' and optionally 'domain'. Received: extra inputs={extra}")
        shape = tuple(inputs[IMAGE].shape)
        if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
            raise ExportError(f"The 'image' input must be [batch, H, W, 3] with fixed H and W. Received: shape={shape}")
        if not isinstance(outputs, dict):
            raise ExportError(
                f"A keras-facemt model returns a dict of outputs. Received: type={type(outputs).__name__}"
            )
        return cls(
            image_size=(int(shape[1]), int(shape[2])),
            has_domain=DOMAIN in inputs,
            output_shapes={k: tuple(int(d) for d in v.shape[1:]) for k, v in outputs.items()},
        )


def decode_image_bytes(image_bytes, image_size: Tuple[int, int], letterbox: bool = False):
    """Decodes a batch of encoded images in graph and brings each to the input size.

    Args:
        image_bytes: string ``[batch]`` of JPEG or PNG bytes (any sizes).
        image_size: (height, width) of the model input.
        letterbox: letterbox (True) or stretch each image (``data.letterbox``).

    Returns:
        ``(images, content_scale)``: float32 ``[batch, height, width, 3]`` RGB in
        [0, 1] and float32 ``[batch, 2]``, each image's content scale
        (``data.letterbox.resize_to_input``).

    Raises (at run time):
        tf.errors.InvalidArgumentError: naming the index of the first element that
            is not a JPEG/PNG (checked by magic bytes before decoding, so a bad
            request fails with a clear message instead of a decoder error).
    """
    import tensorflow as tf

    height, width = int(image_size[0]), int(image_size[1])

    def decode_one(args):
        data, index = args
        is_jpeg = tf.equal(tf.strings.substr(data, 0, len(JPEG_MAGIC)), JPEG_MAGIC)
        is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC)
        check = tf.debugging.Assert(
            tf.logical_or(is_jpeg, is_png),
            [
                f"{SERVE_IMAGE_BYTES}: element",
                index,
                "of image_bytes is not a JPEG or PNG image; first bytes:",
                tf.strings.substr(data, 0, 8),
            ],
            name="image_bytes_check",
        )
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.float32)
        return resize_to_input(image, (height, width), letterbox)

    count = tf.shape(image_bytes)[0]
    return tf.map_fn(
        decode_one,
        (image_bytes, tf.range(count)),
        fn_output_signature=(tf.TensorSpec([height, width, 3], tf.float32), tf.TensorSpec([2], tf.float32)),
    )


def resize_uint8_images(images, image_size: Tuple[int, int], letterbox: bool):
    """uint8 ``[batch, h, w, 3]`` -> ``(float32 [batch, H, W, 3] in [0, 1], content scale [batch, 2])``."""
    import tensorflow as tf

    height, width = int(image_size[0]), int(image_size[1])
    images = tf.cast(images, tf.float32) / 255.0
    return tf.map_fn(
        lambda image: resize_to_input(image, (height, width), letterbox),
        images,
        fn_output_signature=(tf.TensorSpec([height, width, 3], tf.float32), tf.TensorSpec([2], tf.float32)),
    )


class ServingFunctions:
    """Builds the signature functions of one model.

    Args:
        model: the Keras model.
        names: output key -> signature output name (``output_name_map``).
        frozen_domain: ``None`` to expose a ``domain`` input (when the model has
            one), or a domain id fed as a constant to every example (the export-time
            "freeze to one dataset" switch: mathematically the same as rebuilding
            with ``DomainBatchNorm(frozen_domain=...)``).
        spec: the model's ``ServingSpec`` (default: the one its ``ModelInfo``
            carries): its preprocessing and which outputs are geometry.
    """

    def __init__(self, model, names: Dict[str, str], frozen_domain: Optional[int] = None, spec=None):
        from keras_facemt.models.model_info import serving_spec_of

        self.model = model
        self.io = ModelIO.from_model(model)
        self.names = dict(names)
        self.spec = spec or serving_spec_of(model)
        self.letterbox = self.spec.preprocessing.resize == "letterbox"
        self.geometry = {key: self.spec.outputs[key].kind for key in self.names
                         if key in self.spec.outputs and self.spec.outputs[key].kind in GEOMETRY_KINDS}
        if frozen_domain is not None and not self.io.has_domain:
            raise ExportError(
                "The model has no 'domain' input (shared BN); --domain does not apply. "
                f"Received: domain={frozen_domain}"
            )
        self.frozen_domain = frozen_domain

    @property
    def takes_domain(self) -> bool:
        """Whether the signatures have a ``domain`` input."""
        return self.io.has_domain and self.frozen_domain is None

    def _call(self, image, domain, content_scale=None):
        import tensorflow as tf

        inputs = {IMAGE: image}
        if self.io.has_domain:
            if self.frozen_domain is not None:
                domain = tf.fill(tf.shape(image)[:1], tf.constant(self.frozen_domain, tf.int32))
            inputs[DOMAIN] = domain
        outputs = dict(self.model(inputs, training=False))
        if content_scale is not None:
            for key, kind in self.geometry.items():
                mapped = input_to_source(outputs[key], content_scale)
                outputs[key] = tf.clip_by_value(mapped, 0.0, 1.0) if kind == "boxes" else mapped
        return {name: tf.identity(outputs[key], name=name) for key, name in self.names.items()}

    def input_signature(self, signature: str):
        """The ``tf.TensorSpec`` list of ``signature``."""
        import tensorflow as tf

        h, w = self.io.image_size
        if signature == SERVING_DEFAULT:
            specs = [tf.TensorSpec([None, h, w, 3], tf.float32, name=IMAGE)]
        elif signature == SERVE_UINT8:
            hw = [None, None] if self.letterbox else [h, w]
            specs = [tf.TensorSpec([None, *hw, 3], tf.uint8, name=IMAGE)]
        elif signature == SERVE_IMAGE_BYTES:
            specs = [tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)]
        else:
            raise ExportError(f"Unknown signature; choose from {SIGNATURES}. Received: signature={signature!r}")
        if self.takes_domain:
            specs.append(tf.TensorSpec([None], tf.int32, name=DOMAIN))
        return specs

    def function(self, signature: str):
        """The Python function of ``signature`` (arguments as ``input_signature``)."""
        import tensorflow as tf

        size, letterbox = self.io.image_size, self.letterbox
        if signature == SERVING_DEFAULT:

            def convert(x):
                return x, None
        elif signature == SERVE_UINT8:

            def convert(x):
                if not letterbox:
                    return tf.cast(x, tf.float32) / 255.0, None
                return resize_uint8_images(x, size, letterbox)
        elif signature == SERVE_IMAGE_BYTES:

            def convert(x):
                images, scale = decode_image_bytes(x, size, letterbox)
                return images, scale if letterbox else None
        else:
            raise ExportError(f"Unknown signature; choose from {SIGNATURES}. Received: signature={signature!r}")

        if self.takes_domain:

            def fn(image, domain):
                x, scale = convert(image)
                return self._call(x, domain, scale)
        else:

            def fn(image):
                x, scale = convert(image)
                return self._call(x, None, scale)

        fn.__name__ = signature
        return fn
