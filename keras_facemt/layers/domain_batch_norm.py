"""Per-dataset BatchNorm (iFAN Sec. 3.3, cross-dataset hybrid training).

Each source dataset ("domain") keeps its own normalisation statistics and affine
parameters; the per-example domain id selects them by ``gather``, so one batch may
mix domains and the layer exports to SavedModel, TFLite and ONNX (no
``tf.switch_case``, which breaks both converters).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="keras_facemt")
class DomainBatchNorm(keras.layers.Layer):
    """BatchNorm with K sets of statistics selected per example by a domain id.

    In training, batch statistics are computed per domain over the examples of that
    domain (summed across replicas when running under a ``tf.distribute`` strategy,
    so every replica normalises with the global statistics), and only the moving
    statistics of domains present in the batch are updated. At inference the moving
    statistics of each example's domain are gathered.

    Args:
        num_domains: K, the number of statistic sets. ``1`` is ordinary (shared) BN.
        momentum: moving-average momentum.
        epsilon: variance epsilon.
        frozen_domain: if set, ignore the domain input and always use this domain
            (the export-time "freeze to one dataset" switch).
        center, scale: learn per-domain beta / gamma.
        affine_domains: A, the number of gamma / beta sets (``None``: one per
            statistic set). With ``A < K`` (``K`` a multiple of ``A``) statistic set
            ``k`` uses affine set ``k % A``: iFAN's per-iteration BN keeps one set of
            statistics per (iteration, dataset), ids ``iteration * A + dataset``,
            and one affine transform per dataset.

    Call arguments:
        x: ``[batch, ..., channels]`` features.
        domain: int ``[batch]`` domain ids in ``[0, num_domains)``.
        training: bool.

    Returns:
        Normalised features, same shape as ``x``.
    """

    def __init__(self, num_domains=1, momentum=0.99, epsilon=1e-3, frozen_domain=None,
                 center=True, scale=True, affine_domains=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_domains) < 1:
            raise ValueError(f"num_domains must be >= 1. Received: num_domains={num_domains}")
        affine = int(num_domains) if affine_domains is None else int(affine_domains)
        if affine < 1 or int(num_domains) % affine:
            raise ValueError(f"affine_domains must divide num_domains={num_domains}. "
                             f"Received: affine_domains={affine_domains}")
        self.affine_domains = affine
        if frozen_domain is not None and not 0 <= int(frozen_domain) < int(num_domains):
            raise ValueError(
                f"frozen_domain must be in [0, {num_domains}). Received: frozen_domain={frozen_domain}"
            )
        self.num_domains = int(num_domains)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.frozen_domain = None if frozen_domain is None else int(frozen_domain)
        self.center = center
        self.scale = scale
        self.supports_masking = True

    def build(self, x_shape, domain_shape=None):
        c = x_shape[-1]
        k, a = self.num_domains, self.affine_domains
        self.gamma = self.add_weight(shape=(a, c), initializer="ones", name="gamma", trainable=self.scale,
                                     autocast=False)
        self.beta = self.add_weight(shape=(a, c), initializer="zeros", name="beta", trainable=self.center,
                                    autocast=False)
        self.moving_mean = self.add_weight(shape=(k, c), initializer="zeros", name="moving_mean",
                                           trainable=False, aggregation="only_first_replica", autocast=False)
        self.moving_variance = self.add_weight(shape=(k, c), initializer="ones", name="moving_variance",
                                               trainable=False, aggregation="only_first_replica", autocast=False)

    def _fixed_domain(self, domain):
        """The one domain every example uses (frozen, no domain input, or shared BN), else None."""
        if self.frozen_domain is not None:
            return self.frozen_domain
        return 0 if domain is None or self.num_domains == 1 else None

    def _domain_ids(self, x, domain):
        d = self._fixed_domain(domain)
        if d is not None:
            return ops.full((ops.shape(x)[0],), d, dtype="int32")
        return ops.cast(ops.reshape(domain, (-1,)), "int32")

    def _affine(self):
        """gamma and beta ``[K, C]`` float32: affine set ``k % A`` for statistic set ``k``."""
        gamma, beta = ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")
        repeats = self.num_domains // self.affine_domains
        if repeats > 1:
            gamma, beta = ops.tile(gamma, (repeats, 1)), ops.tile(beta, (repeats, 1))
        return gamma, beta

    def _broadcast(self, per_example, x):
        # [batch, C] -> [batch, 1, ..., 1, C] to match x's rank.
        shape = [-1] + [1] * (len(x.shape) - 2) + [per_example.shape[-1]]
        return ops.reshape(per_example, shape)

    def call(self, x, domain=None, training=None):
        in_dtype = x.dtype
        xf = ops.cast(x, "float32")
        if not training:
            return ops.cast(self._inference(xf, domain), in_dtype)
        ids = self._domain_ids(xf, domain)
        mean_k, var_k, count_k = self._domain_moments(xf, ids)
        present = ops.cast(count_k > 0, "float32")[:, None]
        m = self.momentum
        self.moving_mean.assign(
            present * (m * self.moving_mean + (1 - m) * mean_k) + (1 - present) * self.moving_mean
        )
        self.moving_variance.assign(
            present * (m * self.moving_variance + (1 - m) * var_k)
            + (1 - present) * self.moving_variance
        )
        mean, var = ops.take(mean_k, ids, axis=0), ops.take(var_k, ids, axis=0)
        gamma_k, beta_k = self._affine()
        gamma, beta = ops.take(gamma_k, ids, axis=0), ops.take(beta_k, ids, axis=0)
        inv = gamma * ops.rsqrt(var + self.epsilon)
        y = xf * self._broadcast(inv, xf) + self._broadcast(beta - mean * inv, xf)
        return ops.cast(y, in_dtype)

    def _inference(self, x, domain):
        """``x * scale[d] + offset[d]`` from per-domain tables of the moving statistics.

        The tables depend on variables only, so exporters fold them into constants
        and each use costs one gather per table, a multiply and an add (four ops per
        BN instead of a dozen: fewer tensors keep small int8 TFLite files small).
        """
        gamma_k, beta_k = self._affine()
        scale_k = gamma_k * ops.rsqrt(self.moving_variance + self.epsilon)  # [K, C]
        offset_k = beta_k - self.moving_mean * scale_k
        d = self._fixed_domain(domain)
        if d is not None:
            return x * scale_k[d] + offset_k[d]
        # Tables shaped [K, 1, ..., 1, C] gather straight into x's broadcast shape.
        table_shape = [self.num_domains] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
        ids = self._domain_ids(x, domain)
        scale = ops.take(ops.reshape(scale_k, table_shape), ids, axis=0)
        offset = ops.take(ops.reshape(offset_k, table_shape), ids, axis=0)
        return x * scale + offset

    def _domain_moments(self, x, ids):
        """Per-domain mean and variance ``[K, C]`` and example counts ``[K]``."""
        reduce_axes = tuple(range(1, len(x.shape) - 1))
        onehot = ops.one_hot(ids, self.num_domains, dtype="float32")  # [B, K]
        if reduce_axes:
            ex_mean = ops.mean(x, axis=reduce_axes)
            ex_sq = ops.mean(ops.square(x), axis=reduce_axes)
        else:
            ex_mean, ex_sq = x, ops.square(x)
        sums = ops.matmul(ops.transpose(onehot), ex_mean)  # [K, C]
        sq_sums = ops.matmul(ops.transpose(onehot), ex_sq)
        counts = ops.sum(onehot, axis=0)  # [K]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Synchronised BN: global statistics across replicas (every spatial
            # position has equal weight since all replicas use the same input size).
            sums, sq_sums, counts = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [sums, sq_sums, counts])
        denom = ops.maximum(counts, 1.0)[:, None]
        mean = sums / denom
        var = ops.maximum(sq_sums / denom - ops.square(mean), 0.0)
        return mean, var, counts

    def compute_output_shape(self, x_shape, domain_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            momentum=self.momentum,
            epsilon=self.epsilon,
            frozen_domain=self.frozen_domain,
            center=self.center,
            scale=self.scale,
            affine_domains=self.affine_domains,
        )
        return config
