"""MTFR's Eq. 2 as loss terms: L = lambda1 * L_a + lambda2 * L_p (Wang et al., ICMR 2017, Sec. 3.3).

* ``identity``: softmax cross-entropy of ``identity_logits`` (L_p, lambda2 = 1).
* ``attr/<name>``: one term per predicted attribute, the squared error of its
  column of ``attributes`` against the 0/1 label, halved as in Caffe's Euclidean
  loss, masked by ``has_attr/celeba/<name>`` (per-attribute masking is UNSPEC in the
  paper; it lets partly labelled data train). Their sum is L_a; lambda1 is the weight.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.losses.classification import sparse_softmax_cross_entropy
from keras_facemt.training.schedule import LossTerm


def _attribute_mse(column: int, key: str):
    def fn(batch, prediction):
        target = tf.cast(tf.reshape(batch[key], [-1]), tf.float32)
        return 0.5 * tf.square(tf.cast(prediction[:, column], tf.float32) - target)

    return fn


def _identity_ce(batch, logits):
    return sparse_softmax_cross_entropy(batch[B.IDENTITY], logits)


def loss_terms(attributes: Sequence[str], attribute_weight: float = 0.1) -> Tuple[LossTerm, ...]:
    """The identity term and one term per attribute (weight ``attribute_weight`` = lambda1)."""
    terms = [LossTerm("identity", "identity_logits", B.HAS_IDENTITY, _identity_ce, 1.0)]
    for j, name in enumerate(attributes):
        key = f"celeba/{name}"
        terms.append(LossTerm(f"attr/{name}", "attributes", B.has_attr(key), _attribute_mse(j, B.attr(key)),
                              float(attribute_weight)))
    return tuple(terms)
