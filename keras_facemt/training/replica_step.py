"""One replica's update: the phase's loss terms on the replica's batch, gradients, clipping, apply.

A term is ``weight * sum_b(presence_b * loss_b) / N`` with N the number of labelled
examples of the *global* batch (all-reduced), so the replicas' contributions add up
to the single-device loss of the global batch and the summed gradients (the
optimizer all-reduces with SUM) equal the single-device gradient. Gradient clipping
uses the norm of that global gradient. An update whose loss or gradient is not
finite leaves every variable and the optimizer state untouched.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.losses.masked_reduction import masked_sum, presence_count
from keras_facemt.training.schedule import LossTerm, Phase
from keras_facemt.training.trainer_config import MODEL_INPUT_KEYS, TrainerConfig


def missing_output_error(term: LossTerm, phase: Phase, outputs: Sequence[str]) -> ConfigError:
    """The error of a loss term reading an output its phase's model does not produce."""
    return ConfigError(
        f"LossTerm {term.name!r} (phase {phase.name!r}) reads model output {term.output!r}, which model "
        f"{phase.model!r} does not produce; outputs: {list(outputs)}. Received: output={term.output!r}"
    )


class ReplicaStep:
    """Runs inside ``strategy.run``: one update on this replica's batch.

    Args:
        models: ``{key: keras.Model}`` (phases pick one by ``Phase.model``).
        phases: the schedule.
        loss_terms: every ``LossTerm`` of the system.
        optimizer: the (possibly loss-scaling) optimizer.
        config: ``TrainerConfig`` (``clipnorm``, ``jit_compile``).

    Returns (per call):
        all-reduced ``{"terms" [T], "counts" [T], "total", "finite", "examples"}`` over
        the phase's active terms.
    """

    def __init__(self, models: Mapping[str, keras.Model], phases: Sequence[Phase], loss_terms: Sequence[LossTerm],
                 optimizer, config: TrainerConfig):
        self.models = models
        self.phases = phases
        self.loss_terms = loss_terms
        self.optimizer = optimizer
        self.config = config

    @property
    def _uses_loss_scale(self) -> bool:
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    @staticmethod
    def _model_inputs(model: keras.Model, batch: dict):
        # Streams.phase_iterators checked that the batches carry these inputs.
        struct = getattr(model, "_inputs_struct", None)
        if isinstance(struct, Mapping):
            return {k: batch[k] for k in struct}
        if struct is not None and not isinstance(struct, (list, tuple)):
            return batch["image"]
        return {k: batch[k] for k in MODEL_INPUT_KEYS if k in batch}

    def __call__(self, batch, phase_index: int, variables: list):
        """One update on this replica's batch; returns all-reduced statistics."""
        phase = self.phases[phase_index]
        model = self.models[phase.model]
        terms = phase.active_terms(self.loss_terms)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync

        def all_sum(values):
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values) if replicas > 1 else values

        # A term counts on this stream only when the stream carries its presence key;
        # static per stream, hence identical on every replica.
        present = [t for t in terms if t.presence in batch]
        local_counts = tf.stack([presence_count(batch[t.presence]) for t in present] + [tf.constant(0.0)])
        examples = tf.cast(tf.shape(batch["image"])[0], tf.float32)
        counts_and_examples = all_sum(tf.concat([local_counts, [examples]], axis=0))
        global_counts = counts_and_examples[: len(present)]
        global_examples = counts_and_examples[-1]

        inputs = self._model_inputs(model, batch)

        def forward_backward(inputs, batch, global_counts):
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                if not isinstance(outputs, Mapping):
                    outputs = {"output": outputs}
                contributions = []
                for i, term in enumerate(present):
                    if term.output not in outputs:  # a model whose outputs were not known before tracing
                        raise missing_output_error(term, phase, sorted(outputs))
                    prediction = outputs[term.output]
                    if prediction.dtype in (tf.float16, tf.bfloat16):
                        prediction = tf.cast(prediction, tf.float32)
                    loss = term.fn(batch, prediction)
                    if loss.shape.rank is not None and loss.shape.rank != 1:
                        raise ConfigError(
                            f"LossTerm {term.name!r}: fn must return per-example losses [batch]. "
                            f"Received: shape={loss.shape}"
                        )
                    contributions.append(
                        term.weight * tf.math.divide_no_nan(masked_sum(loss, batch[term.presence]), global_counts[i]))
                total = tf.add_n(contributions) if contributions else tf.constant(0.0)
                if model.losses:
                    # Every replica adds the same regularisation; the SUM of gradients
                    # across replicas must count it once.
                    total += tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / replicas
                scaled = self.optimizer.scale_loss(total) if self._uses_loss_scale else total
            grads = tape.gradient(scaled, variables)
            terms_vec = tf.stack(contributions + [tf.constant(0.0)])[:-1] if contributions else tf.zeros([0])
            return terms_vec, total, grads

        if self.config.jit_compile:
            forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)
        local_terms, local_total, grads = forward_backward(inputs, batch, global_counts)
        # Variables the step's terms do not reach (a decoder whose task has no labels
        # in this stream) get no update at all rather than a zero one.
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads = [g for g, _ in pairs]
        used = [v for _, v in pairs]

        def values(g):
            return g.values if isinstance(g, tf.IndexedSlices) else g

        sumsq = (tf.add_n([tf.reduce_sum(tf.square(tf.cast(values(g), tf.float32))) for g in grads])
                 if grads else tf.constant(0.0))
        stats = all_sum(tf.concat([local_terms, [local_total, sumsq]], axis=0))
        global_terms, global_total, global_sumsq = stats[:-2], stats[-2], stats[-1]
        finite = tf.math.is_finite(global_total)
        if not self._uses_loss_scale:
            # Loss scaling detects overflowing gradients itself (and must not count them).
            finite = tf.logical_and(finite, tf.math.is_finite(global_sumsq))

        if self.config.clipnorm is not None and grads:
            grads = [tf.convert_to_tensor(g) for g in grads]
            global_grads = all_sum(grads)
            norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in global_grads])
            if self._uses_loss_scale:
                norm = norm / tf.cast(self.optimizer.dynamic_scale, tf.float32)
            factor = tf.minimum(1.0, self.config.clipnorm / tf.maximum(norm, 1e-12))
            # Scaling each replica's gradient scales their sum: the optimizer's
            # all-reduce then yields the clipped global gradient.
            grads = [g * tf.cast(factor, g.dtype) for g in grads]

        if grads:
            self._apply_if_finite(finite, grads, used)

        # Per-term vector over all active terms (0 where the stream lacks the label).
        full_terms, full_counts = [], []
        by_name = {t.name: i for i, t in enumerate(present)}
        for t in terms:
            if t.name in by_name:
                full_terms.append(global_terms[by_name[t.name]])
                full_counts.append(global_counts[by_name[t.name]])
            else:
                full_terms.append(tf.constant(0.0))
                full_counts.append(tf.constant(0.0))
        return {
            "terms": tf.stack(full_terms),
            "counts": tf.stack(full_counts),
            "total": global_total,
            "finite": finite,
            "examples": global_examples,
        }

    def _apply_if_finite(self, finite, grads, variables):
        """Applies gradients when ``finite`` (identical on all replicas), else leaves all state untouched."""
        optimizer = self.optimizer
        if self._uses_loss_scale:
            # LossScaleOptimizer skips non-finite updates itself and lowers its scale.
            optimizer.apply(grads, variables)
            return

        def apply(grads):
            optimizer.apply(grads, variables)

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply(grads), lambda: None)
            return

        def cross_replica(distribution, finite, grads):
            # The condition must run in cross-replica context: a replica-context cond
            # may not contain the optimizer's merge_call.
            first = distribution.experimental_local_results(finite)[0]
            tf.cond(first, lambda: distribution.extended.call_for_each_replica(apply, args=(grads,)), lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))
