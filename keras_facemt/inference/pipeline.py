"""``FacePipeline``: from photos to every face analysed, with a detector and per-face models.

One detector stage (a model whose declaration has ``boxes`` / ``scores`` / ``count``
and per-face 5-point ``landmarks``, e.g. Uniface) finds the faces of each photo;
every per-face model (a crop model: iFAN's parsing, points and emotion; MTFR's
embedding and attributes) then reads each face cut out of its photo the way it was
trained:

1. the detector runs batched over the photos (letterboxed as it declares); its
   points are mapped to the ``mtfl5`` scheme when it uses another
   (``data.landmarks.convert_points``);
2. per model, each face's least-squares similarity from its 5 detected points (the
   detector's, for every model: a later model's refined points do not move the
   crops of the next) onto the model's template (``ops.align.template`` at the
   model's input size: 112x96 for MTFR; for a square crop model such as iFAN scaled
   about the centre by the declared ``Preprocessing.template_scale``, its training
   crops' looser framing) is computed by ``ops.align.similarity_transform`` for all faces at once, and the
   face is warped bilinearly (pixels from outside the photo are 0, as in
   ``ops.align.align_faces``);
3. each per-face model runs once over all faces of all photos of the call;
4. its outputs are mapped back into the photo through the inverse similarity
   (points; parsing scores are warped back and arg-maxed inside the crop's
   footprint, background elsewhere) and merged into the detection's ``Face``.

Fields are merged in stage order, a later stage's prediction replacing an earlier
one's (a per-face landmark model refines the detector's points; a recognition
model's embedding replaces the detector's); ``Face.sources`` names the stage each
field came from. Every stage can be any form ``inference.stage.load_stage``
accepts: a ``keras.Model``, ``.keras`` file, run directory, export directory or
exported artifact (SavedModel, TFLite float32/float16/int8, ONNX).
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_facemt.data.letterbox import Letterbox, to_rgb_float
from keras_facemt.errors import ConfigError
from keras_facemt.inference.analyzer import detected_faces, fill_face
from keras_facemt.inference.face import Face
from keras_facemt.inference.stage import ModelStage, load_stage

ALIGN_SCHEME = "mtfl5"


class FacePipeline:
    """A detector plus per-face models, batch-first.

    Args:
        detector: the detecting stage (any ``load_stage`` source).
        analyzers: per-face (crop) models, run in order on every detected face.
        max_faces: most faces analysed per photo (highest detection scores first).
            Faces beyond it are not analysed and are reported: ``dropped`` holds,
            per photo of the last call, how many, and a warning names them.
        batch_size: photos per detector forward pass.
        face_batch_size: faces per per-face forward pass (None: all faces of the
            call in one pass).
        domain: BN domain of the stages given as paths/models (an id or training
            dataset name); load a ``ModelStage`` yourself for per-stage domains.
        num_threads: TFLite / ONNX runtime threads.

    Example:
        >>> pipe = FacePipeline("runs/uniface/export/tflite/model_float32.tflite",
        ...                     ["runs/ifan/model.keras", "runs/mtfr"])
        >>> faces = pipe([photo0, photo1])          # one list of Face per photo
        >>> faces[0][0].label("emotion"), faces[0][0].embedding.shape
    """

    def __init__(self, detector, analyzers: Sequence = (), max_faces: int = 64, batch_size: int = 8,
                 face_batch_size: Optional[int] = None, domain: Union[int, str] = 0, num_threads: int = 1):
        if int(max_faces) < 1:
            raise ConfigError(f"max_faces must be >= 1. Received: max_faces={max_faces}")
        if int(batch_size) < 1 or (face_batch_size is not None and int(face_batch_size) < 1):
            raise ConfigError(f"batch sizes must be >= 1. Received: batch_size={batch_size}, "
                              f"face_batch_size={face_batch_size}")
        self.detector = load_stage(detector, domain, num_threads=num_threads)
        if not self.detector.detecting:
            raise ConfigError(f"{self.detector.describe()}: the detector slot needs a face detector (a model that "
                              "outputs boxes); this one reads one face crop. Pass it among the analyzers.")
        self.analyzers: List[ModelStage] = [load_stage(a, domain, num_threads=num_threads) for a in analyzers]
        for stage in self.analyzers:
            if stage.detecting:
                raise ConfigError(f"{stage.describe()}: an analyzer slot needs a per-face (crop) model; this one is "
                                  "a face detector. Pass it as the detector.")
        self._points_key = self.detector.spec.key_of("landmarks", per_face=True)
        if self.analyzers and self._points_key is None:
            raise ConfigError(f"{self.detector.describe()}: per-face models need each face's 5 points to align it, "
                              "and this detector declares no per-face landmarks.")
        self.max_faces = int(max_faces)
        self.batch_size = self.detector.spec.preprocessing.batch_size(batch_size)
        self.face_batch_size = None if face_batch_size is None else int(face_batch_size)
        self.dropped: List[int] = []

    @property
    def stages(self) -> List[ModelStage]:
        return [self.detector] + self.analyzers

    def __call__(self, images: Sequence) -> List[List[Face]]:
        """Analyses a batch of photos.

        Args:
            images: a list of images (gray / RGB / RGBA, uint8 or float, any size) or
                an array ``[batch, H, W, C]``.

        Returns:
            One list of ``Face`` per photo, in input order, faces by decreasing
            detection score; geometry in each photo's pixels.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise ConfigError("FacePipeline is batch-first: pass a list of images or a [batch, H, W, C] array. "
                              f"Received: shape={images.shape}")
        photos = [to_rgb_float(im) for im in images]
        faces, points = self.detect(photos)
        self.dropped = [0] * len(photos)
        for i, fs in enumerate(faces):
            if len(fs) > self.max_faces:
                self.dropped[i] = len(fs) - self.max_faces
                faces[i], points[i] = fs[:self.max_faces], points[i][:self.max_faces]
        if any(self.dropped):
            warnings.warn(f"FacePipeline: faces beyond max_faces={self.max_faces} were not analysed: "
                          + ", ".join(f"image {i}: {n}" for i, n in enumerate(self.dropped) if n), stacklevel=2)
        for stage in self.analyzers:
            self._analyse(stage, photos, faces, points)
        return faces

    # -- detection ------------------------------------------------------------------------
    def detect(self, photos: Sequence[np.ndarray]) -> Tuple[List[List[Face]], List[np.ndarray]]:
        """The detector's faces per photo, and their mtfl5 points ``[n, 5, 2]`` in pixels."""
        stage = self.detector
        spec = stage.spec
        faces: List[List[Face]] = []
        points: List[np.ndarray] = []
        count_key = spec.key_of("count")
        saturated = []
        for start in range(0, len(photos), self.batch_size):
            chunk = photos[start:start + self.batch_size]
            prepared = [prepare_photo(p, stage.input_size, stage.letterbox) for p in chunk]
            out = stage(np.stack([p[0] for p in prepared]))
            detections = detected_faces(spec, out, [p[1] for p in prepared])
            capacity = np.asarray(out[spec.key_of("boxes")]).shape[1]
            for i, fs in enumerate(detections):
                for f in fs:
                    f.sources.update({"box": stage.system, "score": stage.system})
                    for key in ("landmarks", "embedding", "pose", "parsing", "visibility"):
                        if getattr(f, key) is not None:
                            f.sources[key] = stage.system
                    for name in f.attributes:
                        f.sources[name] = stage.system
                n = int(np.asarray(out[count_key][i]).reshape(-1)[0])
                if n >= capacity:
                    saturated.append(start + i)
                faces.append(fs)
                points.append(self._align_points(fs))
        if saturated:
            warnings.warn(f"FacePipeline: the detector returned its maximum number of detections on images "
                          f"{saturated}; more faces may be present (export it with a larger max_detections).",
                          stacklevel=3)
        return faces, points

    def _align_points(self, faces: List[Face]) -> np.ndarray:
        if not faces or self._points_key is None:
            return np.zeros((0, 5, 2), np.float32)
        scheme = self.detector.spec.outputs[self._points_key].scheme
        pts = np.stack([f.landmarks for f in faces]).astype(np.float32)
        if scheme != ALIGN_SCHEME:
            from keras_facemt.data.landmarks import convert_points

            pts, _ = convert_points(pts, np.ones(pts.shape[:-1], np.float32), scheme, ALIGN_SCHEME)
        return pts

    # -- per-face models --------------------------------------------------------------------
    def _analyse(self, stage: ModelStage, photos, faces: List[List[Face]], points: List[np.ndarray]) -> None:
        owners = [(i, j) for i, fs in enumerate(faces) for j in range(len(fs))]
        if not owners:
            return
        all_points = np.concatenate([p for p in points if len(p)], 0)
        matrices = face_matrices(all_points, stage.input_size, stage.spec.preprocessing.template_scale)
        step = self.face_batch_size or len(owners)
        for start in range(0, len(owners), step):
            idx = range(start, min(start + step, len(owners)))
            crops = np.stack([warp_face(photos[owners[k][0]], matrices[k], stage.input_size) for k in idx])
            out = stage(crops)
            for n, k in enumerate(idx):
                i, j = owners[k]
                self._merge(stage, faces[i][j], {key: v[n] for key, v in out.items()}, matrices[k],
                            photos[i].shape[:2])

    @staticmethod
    def _merge(stage: ModelStage, face: Face, out: Dict[str, np.ndarray], matrix: np.ndarray, photo_hw) -> None:
        inverse = _invert(matrix)
        h, w = stage.input_size

        def to_pixels(norm):
            # Normalised -> crop pixel indices -> photo pixel indices -> photo pixels (Face's
            # convention: normalised x times the width, pixel centres at i + 0.5).
            pts = np.asarray(norm, np.float32) * np.array([w, h], np.float32) - 0.5
            return (pts @ inverse[:, :2].T + inverse[:, 2] + 0.5).astype(np.float32)

        for key, spec in stage.spec.outputs.items():
            fill_face(face, key, spec, out[key], to_pixels,
                      lambda logits: parsing_to_photo(logits, inverse, (h, w), photo_hw))
            if spec.kind in ("class_logits", "regression"):
                face.sources[spec.task or key] = stage.system
            elif spec.kind == "multilabel":
                face.sources.update({name: stage.system for name in spec.names})
            elif spec.kind == "parsing_logits":
                face.sources["parsing"] = stage.system
            elif spec.kind in ("landmarks", "embedding", "pose", "visibility"):
                face.sources[spec.kind] = stage.system


_RESIZERS: Dict[Tuple[int, int, bool], object] = {}


def prepare_photo(photo: np.ndarray, size: Tuple[int, int], letterbox: bool) -> Tuple[np.ndarray, Letterbox]:
    """``data.letterbox.resize_image`` of a float RGB photo, as one graph per input size
    (the same ``resize_to_input`` the training pipeline and the serving signatures
    run; op-by-op it costs as much as a small detector)."""
    key = (int(size[0]), int(size[1]), bool(letterbox))
    if key not in _RESIZERS:
        import tensorflow as tf

        from keras_facemt.data.letterbox import resize_to_input

        _RESIZERS[key] = tf.function(lambda image: resize_to_input(image, key[:2], key[2]),
                                     input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    out, scale = _RESIZERS[key](photo)
    h, w = photo.shape[:2]
    sx, sy = (float(v) for v in np.asarray(scale))
    return np.asarray(out), Letterbox(sx * key[1] / w, sy * key[0] / h, 0.0, 0.0, key[1], key[0], w, h)


def crop_template(input_size: Tuple[int, int], template_scale: float = 1.0) -> np.ndarray:
    """The 5 mtfl5 points ``[5, 2]`` (pixel-index coordinates) a crop model's faces
    are aligned to: ``ops.align.template`` at ``input_size`` scaled by
    ``template_scale`` about the crop's centre."""
    from keras_facemt.ops.align import template

    h, w = int(input_size[0]), int(input_size[1])
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0], np.float32)
    return ((template((h, w)) - centre) * float(template_scale) + centre).astype(np.float32)


def face_matrices(points: np.ndarray, input_size: Tuple[int, int], template_scale: float = 1.0) -> np.ndarray:
    """Similarities ``[n, 2, 3]`` from photo pixels to crop pixels (``cv2.warpAffine``
    convention) of faces with mtfl5 ``points`` ``[n, 5, 2]`` (photo pixels, (x, y))."""
    pts = np.asarray(points, np.float32).reshape(-1, 5, 2) - 0.5  # pixel-index coordinates
    return np.asarray(_similarity()(pts, crop_template(input_size, template_scale)[None]), np.float32)


_SIMILARITY = []


def _similarity():
    """``ops.align.similarity_transform`` as one graph for any number of faces (eager
    op-by-op dispatch would cost more than the models on a photo of 20 faces)."""
    if not _SIMILARITY:
        import tensorflow as tf

        from keras_facemt.ops.align import similarity_transform

        _SIMILARITY.append(tf.function(similarity_transform, input_signature=[
            tf.TensorSpec([None, 5, 2], tf.float32), tf.TensorSpec([1, 5, 2], tf.float32)]))
    return _SIMILARITY[0]


def warp_face(photo: np.ndarray, matrix: np.ndarray, input_size: Tuple[int, int]) -> np.ndarray:
    """The aligned crop float32 ``[h, w, 3]`` of ``photo`` (float RGB) under ``matrix``;
    bilinear, 0 outside the photo."""
    import cv2

    h, w = int(input_size[0]), int(input_size[1])
    return cv2.warpAffine(photo, np.asarray(matrix, np.float64), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def parsing_to_photo(logits: np.ndarray, inverse: np.ndarray, crop_hw, photo_hw) -> np.ndarray:
    """Parsing scores of an aligned crop -> uint8 class ids ``[H, W]`` over the photo.

    The scores ``[ph, pw, C]`` (covering the ``crop_hw`` crop) are warped bilinearly
    into the photo through ``inverse`` (crop pixels -> photo pixels) and arg-maxed
    inside the crop's footprint; the rest of the photo is background (0).
    """
    import cv2

    logits = np.asarray(logits, np.float32)
    ph, pw = logits.shape[:2]
    ch, cw = int(crop_hw[0]), int(crop_hw[1])
    H, W = int(photo_hw[0]), int(photo_hw[1])
    # Score pixels -> crop pixels (the scores may be at a lower resolution), then -> photo.
    sx, sy = cw / float(pw), ch / float(ph)
    to_crop = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float64)
    m = _compose(np.asarray(inverse, np.float64), to_crop)
    corners = np.array([[-0.5, -0.5], [pw - 0.5, -0.5], [-0.5, ph - 0.5], [pw - 0.5, ph - 0.5]])
    photo_corners = corners @ m[:, :2].T + m[:, 2]
    x0, y0 = np.clip(np.floor(photo_corners.min(0)).astype(int), 0, [W, H])
    x1, y1 = np.clip(np.ceil(photo_corners.max(0)).astype(int) + 1, 0, [W, H])
    out = np.zeros((H, W), np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    # Score pixels -> pixels of the footprint's region of the photo (cv2 inverts it).
    m_region = m - np.array([[0, 0, x0], [0, 0, y0]], np.float64)
    size = (x1 - x0, y1 - y0)
    warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = cv2.warpAffine(np.ones((ph, pw), np.float32), m_region, size, **warp) > 0.5
    if np.sqrt(abs(np.linalg.det(m[:, :2]))) > 1.0:
        # Enlarged: the scores are interpolated, then arg-maxed (iFAN Sec. 4.1.3), for smooth borders.
        warped = cv2.warpAffine(np.ascontiguousarray(logits), m_region, size, **warp).reshape(size[1], size[0], -1)
        labels = np.argmax(warped, -1).astype(np.uint8)
    else:
        # Shrunk (small faces, most faces of a crowd): every photo pixel covers a score
        # pixel or more, so the arg-max is taken first and sampled by the nearest pixel.
        labels = cv2.warpAffine(np.argmax(logits, -1).astype(np.uint8), m_region, size, flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[y0:y1, x0:x1] = np.where(inside, labels, 0)
    return out


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` after ``b`` for ``[2, 3]`` affine matrices."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def _invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([np.asarray(m, np.float64), [0, 0, 1]]))[:2]
