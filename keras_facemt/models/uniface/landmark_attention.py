"""Landmark attention (Liao et al., Sec. III-D).

"For each detected face, we first exploit an ROI pooling on the face region in F_r
to produce a pooled region with size 64x48x48, which is followed by two
conv-relu-pooling layers to produce a 512-D vector. ... ROI pooling will be applied
on the adjacent areas of each landmark to produce four 64x14x14 regions. Similarly,
after two conv-relu-pooling layers, four 128-D vectors will be made. These vectors
will be concatenated to form a 1024-D vector, followed by a fully-connected layer to
produce the final 128-D embedding."

Choices the paper leaves open, made here:

* ROI pooling is bilinear ROI sampling (``ops.roi.crop_rois``), with a builtin-op
  path for TFLite.
* The second pooling of each branch is a global max pool, which is what turns a map
  into the stated 512-D / 128-D vector.
* The four landmark regions are the two eyes, the nose tip and the mouth centre (mean
  of the two mouth corners), each a box of ``landmark_roi_scale`` x the face box side;
  the four regions share one conv branch and are concatenated in that fixed order.
* Model D (Sec. IV-D.3, "we double the number of channels of the rest recognition
  module to keep the parameter's number unchanged"): face ROI only. Doubling both
  convs of the face branch would multiply its second conv's weights by four (2.6x the
  module's parameters), so the literal doubling cannot keep the count. The reading
  here doubles what the branch outputs (its vector is ``face_dim + 4 * landmark_dim``,
  the 1,024-D of Model A, so the final FC is the same) and solves the first conv's
  width so that the whole module has Model A's parameter count
  (``model_d_channels``; 90 instead of 128 at the paper's sizes, -0.3%).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_facemt.ops import roi as roi_ops

NUM_LANDMARK_ROIS = 4


def _conv3x3_params(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout


def attention_parameter_count(in_channels: int, embedding_dim: int, channels: int, face_dim: int,
                              landmark_dim: int, use_landmarks: bool = True, d_channels: int = 0) -> int:
    """Parameters of the recognition module (both branches and the final FC).

    Model A: face branch ``3x3 C->channels, 3x3 channels->face_dim``, landmark branch
    ``3x3 C->channels, 3x3 channels->landmark_dim`` (shared by the four regions), FC
    from ``face_dim + 4 * landmark_dim`` to ``embedding_dim``. Model D: one branch
    ``3x3 C->d_channels, 3x3 d_channels->(face_dim + 4 * landmark_dim)`` and the same FC.
    """
    vector = face_dim + NUM_LANDMARK_ROIS * landmark_dim
    fc = vector * embedding_dim + embedding_dim
    if use_landmarks:
        return (_conv3x3_params(in_channels, channels) + _conv3x3_params(channels, face_dim)
                + _conv3x3_params(in_channels, channels) + _conv3x3_params(channels, landmark_dim) + fc)
    return _conv3x3_params(in_channels, d_channels) + _conv3x3_params(d_channels, vector) + fc


def model_d_channels(in_channels: int, embedding_dim: int, channels: int, face_dim: int, landmark_dim: int) -> int:
    """First-conv width of Model D's face branch that keeps Model A's parameter count.

    Model D's module has ``w * (9 C + 1 + 9 V) + V + FC`` parameters for a first conv of
    width ``w`` and a branch output ``V = face_dim + 4 * landmark_dim``; ``w`` is that
    equation solved for Model A's count, rounded to the nearest integer (at least 1).
    """
    vector = face_dim + NUM_LANDMARK_ROIS * landmark_dim
    target = attention_parameter_count(in_channels, embedding_dim, channels, face_dim, landmark_dim)
    fc = vector * embedding_dim + embedding_dim
    width = (target - fc - vector) / (9 * in_channels + 1 + 9 * vector)
    return max(1, int(round(width)))


@keras.saving.register_keras_serializable(package="keras_facemt")
class LandmarkAttention(keras.layers.Layer):
    """Per-face embedding from F_r, face boxes and 5 landmarks.

    Args:
        embedding_dim: output size (paper: 128).
        face_roi_size: face ROI side (paper: 48).
        landmark_roi_size: landmark ROI side (paper: 14).
        landmark_roi_scale: landmark ROI side as a fraction of the face box side.
        channels: first conv width of each branch.
        face_dim: face vector size (paper: 512).
        landmark_dim: per-landmark vector size (paper: 128).
        use_landmarks: False gives Model D (face ROI only, the output vector doubled
            and the first conv's width solved to keep Model A's parameter count).
        roi_method: ``"crop_and_resize"`` or ``"gather"`` (builtin TFLite ops).

    Call arguments:
        features: F_r, ``[batch, H, W, C]``.
        boxes: ``[batch, N, 4]`` normalised face boxes.
        landmarks: ``[batch, N, 5, 2]`` normalised mtfl5 landmarks.

    Returns:
        ``[batch, N, embedding_dim]`` embeddings.
    """

    def __init__(self, embedding_dim=128, face_roi_size=48, landmark_roi_size=14, landmark_roi_scale=0.4,
                 channels=128, face_dim=512, landmark_dim=128, use_landmarks=True, roi_method="crop_and_resize",
                 **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = int(embedding_dim)
        self.face_roi_size = int(face_roi_size)
        self.landmark_roi_size = int(landmark_roi_size)
        self.landmark_roi_scale = float(landmark_roi_scale)
        self.channels = int(channels)
        self.face_dim = int(face_dim)
        self.landmark_dim = int(landmark_dim)
        self.use_landmarks = bool(use_landmarks)
        self.roi_method = roi_method
        self.face_conv1 = self.face_conv2 = None
        if self.use_landmarks:
            self._make_face_branch(self.channels, self.face_dim)
        # else: Model D's first-conv width depends on F_r's channels, known in build().
        self.pool = keras.layers.MaxPooling2D(2, name="pool")
        if self.use_landmarks:
            self.lm_conv1 = keras.layers.Conv2D(self.channels, 3, padding="same", activation="relu", name="lm_conv1")
            self.lm_conv2 = keras.layers.Conv2D(self.landmark_dim, 3, padding="same", activation="relu",
                                                name="lm_conv2")
        self.fc = keras.layers.Dense(self.embedding_dim, name="fc")

    def _make_face_branch(self, first: int, vector: int) -> None:
        self.face_conv1 = keras.layers.Conv2D(first, 3, padding="same", activation="relu", name="face_conv1")
        self.face_conv2 = keras.layers.Conv2D(vector, 3, padding="same", activation="relu", name="face_conv2")

    def _vector_dim(self):
        return self.face_dim + NUM_LANDMARK_ROIS * self.landmark_dim

    def build(self, features_shape, boxes_shape=None, landmarks_shape=None):
        c = int(features_shape[-1])
        if not self.use_landmarks:
            self._make_face_branch(model_d_channels(c, self.embedding_dim, self.channels, self.face_dim,
                                                    self.landmark_dim), self._vector_dim())
        f, h = self.face_roi_size, self.face_roi_size // 2
        self.face_conv1.build((None, f, f, c))
        self.face_conv2.build((None, h, h, self.face_conv1.filters))
        if self.use_landmarks:
            s, t = self.landmark_roi_size, self.landmark_roi_size // 2
            self.lm_conv1.build((None, s, s, c))
            self.lm_conv2.build((None, t, t, self.channels))
        self.fc.build((None, self._vector_dim()))
        self.built = True

    def _branch(self, crops, conv1, conv2):
        x = self.pool(conv1(crops))
        return tf.reduce_max(conv2(x), axis=[1, 2])

    def call(self, features, boxes, landmarks):
        features = tf.convert_to_tensor(features, tf.float32)
        boxes = tf.convert_to_tensor(boxes, tf.float32)
        landmarks = tf.convert_to_tensor(landmarks, tf.float32)
        b, n = tf.shape(boxes)[0], tf.shape(boxes)[1]
        c = features.shape[-1]
        fs, ls = self.face_roi_size, self.landmark_roi_size
        face = roi_ops.crop_rois(features, boxes, (fs, fs), self.roi_method)
        vec = self._branch(tf.reshape(face, [-1, fs, fs, c]), self.face_conv1, self.face_conv2)
        if self.use_landmarks:
            points = tf.concat([landmarks[:, :, 0:3], tf.reduce_mean(landmarks[:, :, 3:5], axis=2, keepdims=True)],
                               axis=2)  # [B, N, 4, 2]: eyes, nose, mouth centre
            regions = roi_ops.boxes_around_points(points, boxes, self.landmark_roi_scale)
            crops = roi_ops.crop_rois(features, tf.reshape(regions, tf.stack([b, -1, 4])), (ls, ls), self.roi_method)
            lm_vec = self._branch(tf.reshape(crops, [-1, ls, ls, c]), self.lm_conv1, self.lm_conv2)
            lm_vec = tf.reshape(lm_vec, [-1, NUM_LANDMARK_ROIS * self.landmark_dim])
            vec = tf.concat([vec, lm_vec], axis=-1)
        emb = self.fc(vec)
        return tf.reshape(emb, tf.stack([b, n, self.embedding_dim]))

    def compute_output_shape(self, features_shape, boxes_shape=None, landmarks_shape=None):
        return (boxes_shape[0], boxes_shape[1], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim, face_roi_size=self.face_roi_size,
            landmark_roi_size=self.landmark_roi_size, landmark_roi_scale=self.landmark_roi_scale,
            channels=self.channels, face_dim=self.face_dim, landmark_dim=self.landmark_dim,
            use_landmarks=self.use_landmarks, roi_method=self.roi_method,
        )
        return config
