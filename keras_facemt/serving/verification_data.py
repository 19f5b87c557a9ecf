"""Real examples for export verification and int8 calibration, from the input pipeline.

Each ``--data DIR`` (a ``ShardWriter`` dataset directory) is read by
``data.pipeline.build_dataset`` exactly as evaluation reads it (no augmentation,
one pass, no shuffle), at the model's input size, with the labels of the tasks
the model predicts and the dataset labels. The BN domain of a directory is the
one its dataset name was trained in (``run_config.json`` ``domains``), the frozen
domain when the export freezes one, else 0.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_facemt.data import schema
from keras_facemt.errors import ExportError
from keras_facemt.models.model_info import serving_spec_of
from keras_facemt.serving import signatures as sig
from keras_facemt.serving.verify import VerificationData


def model_tasks(model) -> List[str]:
    """Schema task names whose labels the model's declared outputs are scored against.

    A multi-label output reads each of its label names (``celeba/Male``, ...); an
    output without a schema task (an embedding compared with Keras) reads none.
    """
    spec = serving_spec_of(model)
    tasks = set()
    for out in spec.outputs.values():
        if out.kind == "multilabel":
            tasks.update(n for n in out.names if n in schema.all_tasks())
        elif out.label_task in schema.all_tasks():
            tasks.add(out.label_task)
    return sorted(tasks)


def _domain_of(data_dir: str, manifest: Dict[str, object], split: str, domains: Dict[str, int],
               frozen_domain: Optional[int]) -> int:
    """The BN domain ``data_dir``'s examples (its ``dataset.json`` is ``manifest``) are verified in.

    The frozen domain if the export freezes one; else the training domain of the
    directory's dataset names (``run_config.json`` ``domains``); 0 when the model
    came without domain names (a bare ``.keras`` file).

    Raises:
        ExportError: when the model's training domains are known but the directory's
            datasets are not among them, or map to different domains: verifying in a
            guessed domain would report another dataset's BN statistics as this
            model's accuracy.
    """
    if frozen_domain is not None:
        return int(frozen_domain)
    if not domains:
        return 0
    names = sorted((manifest.get("datasets") or {}).keys())
    known = sorted({int(domains[n]) for n in names if n in domains})
    if len(known) != 1:
        problem = "is not one of" if not known else "maps to several domains of"
        raise ExportError(
            f"{data_dir}: its dataset(s) {names} {problem} the model's training domains {dict(domains)}, "
            f"so the BN domain to verify its {split} examples in is unknown. Pass data the model was trained "
            f"on, or freeze one domain with --domain NAME."
        )
    return known[0]


def load_verification_data(
    model,
    data_dirs: Sequence[str],
    split: str = "test",
    max_examples: int = 32,
    domains: Optional[Dict[str, int]] = None,
    frozen_domain: Optional[int] = None,
) -> VerificationData:
    """Reads up to ``max_examples`` examples (spread over ``data_dirs``) through the pipeline.

    Args:
        model: the model (its input size and output tasks decide what is decoded).
        data_dirs: dataset directories.
        split: split to read (``test`` for held-out data, ``train`` for calibration).
        max_examples: total examples.
        domains: dataset name -> BN domain id.
        frozen_domain: the domain frozen at export (every example gets it).

    Raises:
        ExportError: if no directory is given or they yield nothing.
        DataError / ConfigError: from the pipeline, naming the directory.
    """
    from keras_facemt.configs.data import DataConfig
    from keras_facemt.data import shards
    from keras_facemt.data.pipeline import build_dataset

    if not data_dirs:
        raise ExportError(
            "Verification needs real examples: pass --data DIR (a dataset directory with "
            "dataset.json, e.g. one written by `facemt synth`)."
        )
    spec = serving_spec_of(model)
    wanted = model_tasks(model)
    # A detector reads whole scenes (letterboxed, up to max_faces boxes per image);
    # other systems read one face per crop, as they were trained.
    scenes = spec.detecting
    landmarks = spec.key_of("landmarks")
    scheme = spec.outputs[landmarks].scheme if landmarks else None
    io = sig.ModelIO.from_model(model)
    per_dir = max(1, -(-max_examples // len(data_dirs)))
    batches: List[Dict[str, np.ndarray]] = []
    for data_dir in data_dirs:
        manifest = shards.read_manifest(data_dir)
        presence = (manifest.get("presence") or {}).get(split, {})
        tasks = tuple(t for t in wanted if int(presence.get(t, 0)) > 0)
        cfg = DataConfig(
            name=f"export:{data_dir}",
            data_dir=data_dir,
            split=split,
            image_size=io.image_size,
            mode="scenes" if scenes else "crops",
            global_batch_size=min(16, per_dir),
            domain=_domain_of(data_dir, manifest, split, domains or {}, frozen_domain),
            tasks=tasks,
            landmark_scheme=scheme if "landmarks" in tasks else None,
            augment=None,
            shuffle_buffer=0,
            repeat=False,
        )
        count = 0
        for batch in build_dataset(cfg):
            arrays = {k: v.numpy() for k, v in batch.items()}
            take = min(len(arrays[sig.IMAGE]), per_dir - count)
            batches.append({k: v[:take] for k, v in arrays.items()})
            count += take
            if count >= per_dir:
                break
    # Directories carry different label keys: fill absent ones with zeros (presence 0).
    keys = sorted({k for b in batches for k in b})
    filled = []
    for b in batches:
        n = len(b[sig.IMAGE])
        ref = {k: next(x[k] for x in batches if k in x) for k in keys}
        filled.append({k: b[k] if k in b else np.zeros((n,) + ref[k].shape[1:], ref[k].dtype) for k in keys})
    source = ", ".join(f"{d} ({split})" for d in data_dirs)
    return VerificationData.from_batches(filled, max_examples, source=source)
