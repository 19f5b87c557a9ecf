"""Unreduced per-example losses and their masked reduction.

Every loss returns ``[batch]`` per-example values; ``masked_reduction`` turns them
into a task loss over the labelled examples (the trainer normalises by the global,
all-replica count).
"""

from keras_facemt.losses.age import age_euclidean, age_gaussian
from keras_facemt.losses.classification import (per_pixel_cross_entropy, sigmoid_cross_entropy,
                                                sparse_softmax_cross_entropy)
from keras_facemt.losses.masked_reduction import (global_presence_count, masked_mean, masked_sum,
                                                  mean_over_valid, presence_count)
from keras_facemt.losses.mimic import mimic_squared_l2
from keras_facemt.losses.regression import euclidean_points, l2_points, smooth_l1

__all__ = [
    "age_euclidean", "age_gaussian", "euclidean_points", "global_presence_count", "l2_points", "masked_mean",
    "masked_sum", "mean_over_valid", "mimic_squared_l2", "per_pixel_cross_entropy", "presence_count",
    "sigmoid_cross_entropy", "smooth_l1", "sparse_softmax_cross_entropy",
]
