import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.losses import detection as losses
from keras_facemt.models.uniface import losses as uniface_losses
from keras_facemt.models.uniface import model as uniface
from keras_facemt.ops import anchors as anchor_ops
from keras_facemt.ops import boxes as box_ops

ANCHORS = anchor_ops.ssd_anchors([(4, 4), (2, 2)], [0.25, 0.5], [1.0, 0.8])


def _batch(boxes, mask, teacher_dim=4):
    boxes = np.asarray(boxes, np.float32)
    b, f = boxes.shape[:2]
    c = (boxes[..., :2] + boxes[..., 2:]) / 2
    lms = np.repeat(c[:, :, None], 5, 2) + np.linspace(-0.05, 0.05, 10).reshape(1, 1, 5, 2)
    return {
        "bbox": tf.constant(boxes), "face_mask": tf.constant(np.asarray(mask, np.float32)),
        "landmarks": tf.constant(lms.astype(np.float32)), "has_landmarks": tf.constant(np.asarray(mask, np.float32)),
        "teacher_embedding": tf.constant(np.ones((b, f, teacher_dim), np.float32)),
        "has_teacher_embedding": tf.constant(np.asarray(mask, np.float32)), "has_boxes": tf.ones([b]),
    }


def _perfect_predictions(targets, batch):
    m = targets.match(batch)
    pos = m.positive.numpy()
    logits = np.where(pos[..., None], [-10.0, 10.0], [10.0, -10.0]).astype(np.float32)
    box = targets.box_targets(batch, m).numpy()
    lm, _ = targets.landmark_targets(batch, m)
    return logits, box, lm.numpy(), pos


def test_perfect_predictions_give_near_zero_and_noise_increases_loss():
    batch = _batch([[[0.1, 0.1, 0.35, 0.4], [0.5, 0.4, 0.95, 0.95]], [[0.3, 0.3, 0.55, 0.6], [0, 0, 0, 0]]],
                   [[1, 1], [1, 0]])
    targets = losses.DetectionTargets(ANCHORS, iou_threshold=0.35)
    logits, box, lm, pos = _perfect_predictions(targets, batch)
    assert pos.sum(1).min() >= 1
    cls_fn = losses.classification_loss_fn(targets)
    box_fn = losses.box_loss_fn(targets)
    lm_fn = losses.landmark_loss_fn(targets)
    assert cls_fn(batch, logits).numpy().max() < 1e-3
    np.testing.assert_allclose(box_fn(batch, box).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(lm_fn(batch, lm).numpy(), 0, atol=1e-5)
    noise = np.random.default_rng(0).normal(0, 1, box.shape).astype(np.float32)
    assert (box_fn(batch, box + noise).numpy() > 0.1).all()
    flipped = -logits
    assert (cls_fn(batch, flipped).numpy() > 5).all()


def test_per_image_normalisation_by_matched_anchors():
    one = _batch([[[0.1, 0.1, 0.35, 0.4], [0, 0, 0, 0]]], [[1, 0]])
    two = _batch([[[0.1, 0.1, 0.35, 0.4], [0.6, 0.6, 0.85, 0.9]]], [[1, 1]])
    targets = losses.DetectionTargets(ANCHORS)
    fn = losses.box_loss_fn(targets)
    # The same error on every positive anchor gives the same loss whatever the face count.
    a = fn(one, tf.fill([1, ANCHORS.shape[0], 4], 0.5) + targets.box_targets(one, targets.match(one))).numpy()
    b = fn(two, tf.fill([1, ANCHORS.shape[0], 4], 0.5) + targets.box_targets(two, targets.match(two))).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(a, 4 * 0.125, rtol=1e-5)


def test_boxes_outside_the_image_are_clipped_or_dropped():
    batch = _batch([[[-0.2, -0.1, 0.3, 0.35], [1.2, 1.2, 1.5, 1.6]]], [[1, 1]])
    np.testing.assert_array_equal(losses.valid_faces(batch).numpy(), [[1, 0]])
    targets = losses.DetectionTargets(ANCHORS)
    m = targets.match(batch)
    assert (m.matched_index.numpy() != 1).all()
    gt = box_ops.decode_boxes(targets.box_targets(batch, m), ANCHORS).numpy()[m.positive.numpy()]
    np.testing.assert_allclose(gt, [[0, 0, 0.3, 0.35]] * len(gt), atol=1e-5)


def test_no_face_image_mines_min_negatives_only():
    batch = _batch([[[0, 0, 0, 0]]], [[0]])
    targets = losses.DetectionTargets(ANCHORS)
    logits = np.zeros((1, ANCHORS.shape[0], 2), np.float32)
    ce = np.log(2.0)
    np.testing.assert_allclose(losses.classification_loss_fn(targets, min_negatives=5)(batch, logits).numpy(),
                               [5 * ce], rtol=1e-5)
    np.testing.assert_allclose(losses.box_loss_fn(targets)(batch, logits[..., :1].repeat(4, -1)).numpy(), [0])
    assert uniface_losses.mimic_loss_fn()(batch, np.zeros((1, 1, 4), np.float32)).numpy().tolist() == [0.0]


def test_mimic_loss_is_mean_squared_l2_over_faces():
    batch = _batch([[[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7], [0, 0, 0, 0]]], [[1, 1, 0]])
    emb = np.zeros((1, 3, 4), np.float32)
    emb[0, 1] = 3.0
    # Face 0: ||0 - 1||^2 = 4; face 1: ||3 - 1||^2 = 16; padded face ignored.
    np.testing.assert_allclose(uniface_losses.mimic_loss_fn()(batch, emb).numpy(), [10.0])


def test_loss_terms_and_a_few_steps_reduce_the_loss():
    cfg = uniface.PRESETS["tiny"]()
    keras.utils.set_random_seed(1)
    model = uniface.build_model(cfg)
    anchors = uniface.model_anchors(model, cfg.level_anchor_sizes(), cfg.aspect_ratios)
    terms = uniface_losses.loss_terms(anchors, cfg.variances)
    assert [t.name for t in terms] == ["detection/cls", "detection/box", "detection/landmarks", "mimic"]
    with pytest.raises(ConfigError, match="weights"):
        uniface_losses.loss_terms(anchors, weights=(1, 1))
    with pytest.raises(ConfigError, match="matcher"):
        losses.DetectionTargets(anchors, matcher="hungarian")
    rng = np.random.default_rng(0)
    img = np.zeros((2, 96, 96, 3), np.float32)
    img[0, 20:60, 30:62] = 1.0
    img[1, 40:80, 10:42] = 1.0
    batch = _batch([[[30 / 96, 20 / 96, 62 / 96, 60 / 96]], [[10 / 96, 40 / 96, 42 / 96, 80 / 96]]], [[1], [1]],
                   teacher_dim=32)
    batch["teacher_embedding"] = tf.constant(rng.normal(size=(2, 1, 32)).astype(np.float32))
    batch["image"] = tf.constant(img)
    opt = keras.optimizers.Adam(3e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = model({"image": batch["image"], "bbox": batch["bbox"], "landmarks": batch["landmarks"]},
                        training=True)
            total = tf.add_n([t.weight * tf.reduce_mean(t.fn(batch, out[t.output])) for t in terms])
        grads = tape.gradient(total, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return total

    first = float(step())
    for _ in range(12):
        last = float(step())
    assert np.isfinite(last) and last < 0.5 * first
