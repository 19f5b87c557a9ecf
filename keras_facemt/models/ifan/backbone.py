"""The iFAN backbone: a fully convolutional DenseNet with feedback inputs.

Li et al., MM'17, Sec. 4.1.2: ``num_levels`` dense blocks on the way down (each
followed by 2x2 average pooling: 128 -> 64 -> 32 -> 16 -> 8 -> 4) and as many on the
way up (each followed by sub-pixel up-sampling and a convolution: 4 -> ... -> 128),
every convolution in a dense block 3x3 with stride 1, FC-DenseNet skip connections
(Jégou et al. 2016) joining the paths at equal resolution. Every normalisation is a
per-dataset ``DomainBatchNorm`` (Sec. 3.3).

The task integrator's feedback (Eq. 4) enters at every resolution S/2**l,
l = 0..num_levels: the down block at that resolution (l < num_levels) or the first
up block (l = num_levels, the coarsest map) receives it as context of its first
convolution (``feedback_to="first_conv"``, the default). With
``feedback_to="every_block"`` every dense block, the up path's included, receives
the feedback of its resolution, so the maps the parsing decoder reads are
conditioned on it directly and not only through the skip connections. Without
feedback (iteration 0) the context is zeros, i.e. the plain network with the very
same weights.

The backbone runs once per interaction iteration with shared weights, so by default
one BN layer normalises every iteration with the same statistics, although the
feedback shifts the activations from iteration to iteration. With
``iteration_bn_sets = ITER + 1`` every BN keeps separate statistics per
(iteration, dataset), selected like the per-dataset statistics by gathering with the
id ``iteration * num_domains + domain`` (no ``tf.switch_case``: the model still
exports), while gamma and beta stay shared by the iterations.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_facemt.layers.conv_bn_act import ConvBnAct
from keras_facemt.layers.dense_block import DenseBlock
from keras_facemt.layers.subpixel import SubPixelUpsampling
from keras_facemt.models.ifan.config import FEEDBACK_TARGETS


@keras.saving.register_keras_serializable(package="keras_facemt")
class FCDenseNetBackbone(keras.layers.Layer):
    """Fully convolutional DenseNet body of iFAN (everything after the stem).

    Args:
        num_levels: L, dense blocks per path; the input side must be divisible by
            ``2**L``.
        layers_per_block: convolutions per dense block.
        growth_rate: channels each convolution adds.
        feedback_filters: F, channels of the feedback at every level; ``0`` builds
            a backbone without feedback inputs (ITER = 0).
        num_domains: BN statistic sets (``1`` is shared BN).
        frozen_domain: if set, BN always uses this domain.
        dropout: dropout rate after each dense-block convolution.
        feedback_to: ``"first_conv"``: the down blocks and the coarsest up block
            receive the feedback (first convolution of each); ``"every_block"``:
            every down and up block does.
        iteration_bn_sets: BN statistic sets per dataset, one per interaction
            iteration (``1``: all iterations share the statistics).

    Call arguments:
        x: ``[batch, S, S, C]`` stem features.
        domain: int ``[batch]`` domain ids.
        feedback: ``None`` or a list of L + 1 tensors, entry l of shape
            ``[batch, S / 2**l, S / 2**l, F]``. ``None`` means zero feedback.
        iteration: python int, the interaction iteration (selects the BN
            statistics when ``iteration_bn_sets > 1``).
        training: bool.

    Returns:
        Dict of feature maps read by the decoders:
        ``"pixel"`` ``[batch, S, S, Cp]`` (end of the up path, parsing),
        ``"point"`` ``[batch, S / 2**(L-1), S / 2**(L-1), Cl]`` (last down block,
        8x8 in the paper, landmarks), ``"global"`` ``[batch, S / 2**L, S / 2**L, Cg]``
        (coarsest block, 4x4 in the paper, attributes).
    """

    def __init__(self, num_levels, layers_per_block, growth_rate, feedback_filters=0, num_domains=1,
                 frozen_domain=None, dropout=0.0, feedback_to="first_conv", iteration_bn_sets=1, **kwargs):
        super().__init__(**kwargs)
        self.num_levels = int(num_levels)
        self.layers_per_block = int(layers_per_block)
        self.growth_rate = int(growth_rate)
        self.feedback_filters = int(feedback_filters)
        self.num_domains = int(num_domains)
        self.frozen_domain = frozen_domain
        self.dropout = float(dropout)
        self.feedback_to = feedback_to
        self.iteration_bn_sets = int(iteration_bn_sets)
        if self.num_levels < 1:
            raise ValueError(f"num_levels must be >= 1. Received: num_levels={num_levels}")
        if feedback_to not in FEEDBACK_TARGETS:
            raise ValueError(f"feedback_to must be one of {list(FEEDBACK_TARGETS)}. Received: feedback_to={feedback_to!r}")
        if self.iteration_bn_sets < 1:
            raise ValueError(f"iteration_bn_sets must be >= 1. Received: iteration_bn_sets={iteration_bn_sets}")
        new = self.layers_per_block * self.growth_rate
        # Per-iteration statistics: K * sets statistic sets, K affine sets; the ids are
        # computed here, so the frozen domain is applied here too.
        per_iteration = self.iteration_bn_sets > 1
        bn = dict(num_domains=self.num_domains * self.iteration_bn_sets,
                  frozen_domain=None if per_iteration else frozen_domain,
                  affine_domains=self.num_domains if per_iteration else None)
        block_args = dict(num_layers=self.layers_per_block, growth_rate=self.growth_rate,
                          dropout=self.dropout, dtype=self.dtype_policy, **bn)
        self.down_blocks = [DenseBlock(**block_args, name=f"down_{l}") for l in range(self.num_levels)]
        self.pools = [keras.layers.AveragePooling2D(2, dtype=self.dtype_policy, name=f"down_{l}_pool")
                      for l in range(self.num_levels)]
        # Up blocks return input + new maps; the new ones are sliced off (the FC-DenseNet
        # up path) so that the coarsest block's whole output is "global" without a second
        # concatenation of the same maps (one int8 scale per concatenation chain).
        self.up_blocks = [DenseBlock(**block_args, name=f"up_{j}")
                          for j in range(self.num_levels)]
        self.upsamplers = [SubPixelUpsampling(new, 2, dtype=self.dtype_policy, name=f"up_{j}_subpixel")
                           for j in range(self.num_levels)]
        self.up_convs = [
            ConvBnAct(new, 3, dtype=self.dtype_policy, name=f"up_{j}_conv", **bn)
            for j in range(self.num_levels)
        ]

    def _up_feedback_level(self, j):
        """Feedback level of up block ``j`` (at resolution S / 2**(L - j)), or None."""
        if j == 0 or self.feedback_to == "every_block":
            return self.num_levels - j
        return None

    def _context_shape(self, shape):
        return None if not self.feedback_filters else tuple(shape[:-1]) + (self.feedback_filters,)

    def build(self, x_shape, domain_shape=None, feedback_shape=None):
        batch, size, _, channels = x_shape
        skips = []
        shape = (batch, size, size, channels)
        for l in range(self.num_levels):
            self.down_blocks[l].build(shape, context_shape=self._context_shape(shape))
            shape = self.down_blocks[l].compute_output_shape(shape)
            skips.append(shape)
            size //= 2
            shape = (batch, size, size, shape[-1])
        for j in range(self.num_levels):
            receives = self._up_feedback_level(j) is not None
            self.up_blocks[j].build(shape, context_shape=self._context_shape(shape) if receives else None)
            new_shape = tuple(shape[:-1]) + (self.layers_per_block * self.growth_rate,)
            self.upsamplers[j].build(new_shape)
            up_shape = self.upsamplers[j].compute_output_shape(new_shape)
            self.up_convs[j].build(up_shape)
            skip = skips[self.num_levels - 1 - j]
            shape = tuple(skip[:-1]) + (up_shape[-1] + skip[-1],)
        self.built = True

    def _feedback(self, x, feedback, level):
        if not self.feedback_filters:
            return None
        if feedback is not None:
            return feedback[level]
        # Iteration 0: zero feedback, so the same weights compute the plain network.
        size = x.shape[1]
        return ops.zeros((ops.shape(x)[0], size, size, self.feedback_filters), dtype=x.dtype)

    def _bn_domain(self, x, domain, iteration):
        """The BN statistic-set ids ``[batch]`` of ``iteration`` (``domain`` itself without per-iteration BN)."""
        if self.iteration_bn_sets == 1:
            return domain
        if not 0 <= iteration < self.iteration_bn_sets:
            raise ValueError(f"iteration must be in [0, {self.iteration_bn_sets}). Received: iteration={iteration}")
        if self.frozen_domain is not None or domain is None or self.num_domains == 1:
            base = 0 if self.frozen_domain is None else int(self.frozen_domain)
            return ops.full((ops.shape(x)[0],), base + iteration * self.num_domains, dtype="int32")
        return ops.cast(ops.reshape(domain, (-1,)), "int32") + iteration * self.num_domains

    def call(self, x, domain=None, feedback=None, iteration=0, training=None):
        if feedback is not None and len(feedback) != self.num_levels + 1:
            raise ValueError(
                f"feedback must hold num_levels + 1 = {self.num_levels + 1} maps. "
                f"Received: len(feedback)={len(feedback)}"
            )
        domain = self._bn_domain(x, domain, iteration)
        skips = []
        h = x
        for l in range(self.num_levels):
            h = self.down_blocks[l](h, domain=domain, context=self._feedback(h, feedback, l), training=training)
            skips.append(h)
            h = self.pools[l](h)
        global_features = None
        for j in range(self.num_levels):
            level = self._up_feedback_level(j)
            context = None if level is None else self._feedback(h, feedback, level)
            full = self.up_blocks[j](h, domain=domain, context=context, training=training)
            if j == 0:
                global_features = full
            new = full[..., h.shape[-1]:]
            up = self.up_convs[j](self.upsamplers[j](new), domain=domain, training=training)
            h = ops.concatenate([up, skips[self.num_levels - 1 - j]], axis=-1)
        return {"pixel": h, "point": skips[-1], "global": global_features}

    def compute_output_shape(self, x_shape, domain_shape=None, feedback_shape=None):
        batch, size, _, channels = x_shape
        new = self.layers_per_block * self.growth_rate
        skip_channels = [channels + (l + 1) * new for l in range(self.num_levels)]
        coarse = size // 2**self.num_levels
        point = size // 2 ** (self.num_levels - 1)
        return {
            "pixel": (batch, size, size, new + skip_channels[0]),
            "point": (batch, point, point, skip_channels[-1]),
            "global": (batch, coarse, coarse, skip_channels[-1] + new),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            num_levels=self.num_levels,
            layers_per_block=self.layers_per_block,
            growth_rate=self.growth_rate,
            feedback_filters=self.feedback_filters,
            num_domains=self.num_domains,
            frozen_domain=self.frozen_domain,
            dropout=self.dropout,
            feedback_to=self.feedback_to,
            iteration_bn_sets=self.iteration_bn_sets,
        )
        return config
