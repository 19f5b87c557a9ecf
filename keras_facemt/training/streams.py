"""The trainer's data side: named streams, their distributed iterators per phase, resume skipping.

A stream is a ``DataConfig`` (read by ``data.pipeline.build_dataset``) or a
``callable(input_context) -> tf.data.Dataset`` of batch dicts (``data/batch.py``) of
the per-replica batch size. ``Streams`` checks each one once, when a phase's
iterators are made: it yields dict batches with ``image``, it carries every input
the phase's model declares, and at least one of its loss terms' presence keys.

Resume: each stream skips the batches the schedule consumed before the restored
step (``consumed_batches``), so a resumed run sees the data order an uninterrupted
run would have seen (given deterministic datasets).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.training.schedule import LossTerm, Phase

# A stream: a DataConfig, or callable(input_context) -> tf.data.Dataset of batch dicts.
StreamSpec = Union[object, Callable[[Optional[tf.distribute.InputContext]], tf.data.Dataset]]


def is_data_config(spec) -> bool:
    from keras_facemt.configs.data import DataConfig

    return isinstance(spec, DataConfig)


def consumed_batches(phases: Sequence[Phase], phase_index: int, step_in_phase: int) -> Dict[str, int]:
    """Batches (global steps' worth) each stream gave before ``(phase_index, step_in_phase)``."""
    counts: Dict[str, int] = {}
    for i, phase in enumerate(phases[: phase_index + 1]):
        k = phase.steps if i < phase_index else step_in_phase
        if phase.mode == "mix":
            for s in phase.streams:
                counts[s] = counts.get(s, 0) + k
        else:
            n = len(phase.streams)
            for j, s in enumerate(phase.streams):
                counts[s] = counts.get(s, 0) + (-(-(k - j) // n) if k > j else 0)
    return counts


def concat_batches(names: Sequence[str], batches: Sequence[dict]) -> dict:
    """Concatenates one batch per stream along the batch axis (``mix`` phases).

    Keys are the union; a stream lacking a key contributes zeros, which for ``has_*``
    keys means "not labelled".

    Raises:
        ConfigError: a key whose per-example shape differs between streams.
    """
    keys = []
    for b in batches:
        keys.extend(k for k in b if k not in keys)
    out = {}
    for key in keys:
        ref_name, ref = next((n, b[key]) for n, b in zip(names, batches) if key in b)
        parts = []
        for name, b in zip(names, batches):
            if key in b:
                if not b[key].shape[1:].is_compatible_with(ref.shape[1:]) or b[key].dtype != ref.dtype:
                    raise ConfigError(
                        f"mix phase: batch key {key!r} has per-example shape {b[key].shape[1:]} ({b[key].dtype.name}) "
                        f"in stream {name!r} but {ref.shape[1:]} ({ref.dtype.name}) in stream {ref_name!r}. "
                        f"Received: streams={tuple(names)}"
                    )
                parts.append(b[key])
            else:
                if key == "image":
                    raise ConfigError(
                        f"mix phase: stream {name!r} yields batches without 'image'. Received: keys={sorted(b)}")
                n = tf.shape(b["image"])[0]
                shape = tf.concat([[n], tf.shape(ref)[1:]], axis=0)
                parts.append(tf.zeros(shape, ref.dtype))
        out[key] = tf.concat(parts, axis=0)
    return out


class Streams:
    """The named training streams of a run.

    Args:
        streams: ``{name: DataConfig or callable(input_context) -> tf.data.Dataset}``.

    Raises:
        ConfigError: no stream, or a stream of another type.
    """

    def __init__(self, streams: Mapping[str, StreamSpec]):
        if not streams:
            raise ConfigError(f"streams must name at least one data stream. Received: streams={streams!r}")
        for name, spec in streams.items():
            if not (is_data_config(spec) or callable(spec)):
                raise ConfigError(
                    f"stream {name!r} must be a DataConfig or a callable(input_context) -> tf.data.Dataset. "
                    f"Received: {name}={type(spec).__name__}"
                )
        self.specs = dict(streams)

    @property
    def names(self) -> List[str]:
        return list(self.specs)

    def dataset(self, name: str, input_context, skip_steps: int) -> tf.data.Dataset:
        """Stream ``name``'s dataset for one input pipeline, past its first ``skip_steps`` global steps."""
        spec = self.specs[name]
        if is_data_config(spec):
            from keras_facemt.data.pipeline import build_dataset

            dataset = build_dataset(spec, input_context)
        else:
            dataset = spec(input_context)
        if not isinstance(dataset, tf.data.Dataset):
            raise ConfigError(f"stream {name!r} must produce a tf.data.Dataset. Received: {type(dataset).__name__}")
        if not isinstance(dataset.element_spec, Mapping) or "image" not in dataset.element_spec:
            raise ConfigError(
                f"stream {name!r} must yield dict batches with an 'image' key (data/batch.py). "
                f"Received: element_spec={dataset.element_spec}"
            )
        if skip_steps:
            # One global step takes one batch from each replica this pipeline feeds.
            per_step = 1
            if input_context is not None:
                per_step = max(input_context.num_replicas_in_sync // max(input_context.num_input_pipelines, 1), 1)
            dataset = dataset.skip(skip_steps * per_step)
        return dataset

    def phase_iterators(self, strategy, phases: Sequence[Phase], phase_index: int, step_in_phase: int,
                        loss_terms: Sequence[LossTerm], model) -> Tuple[list, List[int], List[Tuple[str, ...]]]:
        """Distributed iterators of a phase, its cycle plan (iterator index per update) and
        the stream names behind each iterator.

        Raises:
            ConfigError: a stream lacking one of the model's inputs, or a phase whose
                streams carry none of its loss terms' presence keys.
        """
        phase = phases[phase_index]
        consumed = consumed_batches(phases, phase_index, step_in_phase)
        if phase.mode == "mix":
            names = tuple(phase.streams)

            def mixed_fn(ctx):
                parts = tuple(self.dataset(s, ctx, consumed.get(s, 0)) for s in names)
                return tf.data.Dataset.zip(parts).map(lambda *b: concat_batches(names, b),
                                                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

            dist = strategy.distribute_datasets_from_function(mixed_fn)
            _check_model_inputs(phase, names, dist.element_spec, model)
            return [iter(dist)], [0], [names]
        unique = list(dict.fromkeys(phase.streams))
        iterators = []
        keys = set()
        for s in unique:
            dist = strategy.distribute_datasets_from_function(
                lambda ctx, s=s: self.dataset(s, ctx, consumed.get(s, 0)))
            _check_model_inputs(phase, (s,), dist.element_spec, model)
            keys.update(dist.element_spec)
            iterators.append(iter(dist))
        presences = [t.presence for t in phase.active_terms(loss_terms)]
        if not any(p in keys for p in presences):
            raise ConfigError(
                f"Phase {phase.name!r}: none of its streams {phase.streams} yields a presence key of its loss terms "
                f"({sorted(set(presences))}), so it would train nothing. Received: batch keys={sorted(keys)}"
            )
        plan = [unique.index(s) for s in phase.streams]
        return iterators, plan, [(s,) for s in unique]


def _check_model_inputs(phase: Phase, names: Sequence[str], element_spec, model) -> None:
    """The batches of ``names`` carry every input ``model`` declares (checked once, before tracing)."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, Mapping):
        missing = [k for k in struct if k not in element_spec]
        if missing:
            raise ConfigError(
                f"Phase {phase.name!r}: stream {'+'.join(names)!r} lacks model input(s) {missing} of model "
                f"{phase.model!r}. Received: batch keys={sorted(element_spec)}"
            )
