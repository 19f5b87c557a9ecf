"""Per-identity majority voting of attribute labels over a shard set.

Attribute labels of large face sets are noisy and disagree between photos of one
person, although traits such as gender or nose shape belong to the person. Wang et
al. (ICMR 2017, Sec. 3.2) replace each identity's labels of such attributes by the
majority over that identity's images before training. ``vote_attributes`` does this
for a converted dataset (all splits, identities scoped by ``image/dataset``) and
writes a new dataset; the input is left untouched.

Only the listed attributes are voted. The default list holds traits that do not
change between photos of one person; expression, accessory, make-up and hair-style
attributes (``Smiling``, ``Eyeglasses``, ``Wearing_*``, ``Bangs``, hair colours, ...)
are left as annotated. A tie keeps each image's own label; identities with fewer
than ``min_images`` labelled images are left alone. With ``fill_missing`` a face of
a voted identity that lacks the label receives the majority label.
"""

from __future__ import annotations

import collections
import glob
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.data import schema
from keras_facemt.data.shards import ShardWriter, iter_records, read_manifest
from keras_facemt.errors import ConfigError, DataError

IDENTITY_ATTRIBUTES: Tuple[str, ...] = ("gender", "ethnicity") + tuple(
    f"celeba/{n}" for n in ("Male", "Young", "Attractive", "Big_Lips", "Big_Nose", "Pointy_Nose", "Narrow_Eyes",
                            "Oval_Face", "Pale_Skin", "Chubby", "Double_Chin", "High_Cheekbones", "Bushy_Eyebrows",
                            "Arched_Eyebrows"))


def _shards(data_dir: str):
    files = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord")))
    if not files:
        raise DataError(f"{data_dir}: no *.tfrecord shards found.")
    return files


def majority_labels(data_dir: str, attributes: Sequence[str], min_images: int = 2) -> Dict[tuple, int]:
    """``(dataset, identity, attribute) -> majority value`` over every labelled face.

    Ties and identities with fewer than ``min_images`` labelled faces get no entry.
    """
    votes: Dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    wanted = set(attributes)
    for path in _shards(data_dir):
        for rec in iter_records(path):
            if rec.identity is None:
                continue
            for name in wanted & set(rec.attributes):
                for i in range(rec.num_faces):
                    if rec.has_identity[i] and rec.has_attributes[name][i]:
                        votes[(rec.dataset, int(rec.identity[i]), name)][int(rec.attributes[name][i])] += 1
    out = {}
    for key, counter in votes.items():
        ranked = counter.most_common(2)
        if sum(counter.values()) < min_images or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            continue
        out[key] = ranked[0][0]
    return out


def vote_attributes(in_dir: str, out_dir: str, attributes: Optional[Sequence[str]] = None, min_images: int = 2,
                    fill_missing: bool = False, overwrite: bool = False) -> Dict[str, int]:
    """Writes a copy of ``in_dir`` with voted attribute labels to ``out_dir``.

    Args:
        in_dir: converted dataset (with identities).
        out_dir: output dataset directory (written atomically).
        attributes: attribute names to vote (default ``IDENTITY_ATTRIBUTES``).
        min_images: labelled faces an identity needs for a vote.
        fill_missing: give unlabelled faces of a voted identity the majority label.
        overwrite: replace an existing dataset at ``out_dir``.

    Returns:
        Labels changed (or filled) per attribute.

    Raises:
        ConfigError: for an unknown or non-categorical attribute, or ``out_dir`` equal
            to ``in_dir``.
        DataError: if ``in_dir`` is not a complete dataset.
    """
    attributes = tuple(attributes or IDENTITY_ATTRIBUTES)
    for name in attributes:
        if schema.attribute_spec(name).kind == "regression":
            raise ConfigError(f"Only class and binary attributes can be voted. Received: attribute={name!r}")
    if os.path.abspath(in_dir) == os.path.abspath(out_dir):
        raise ConfigError(f"out_dir must differ from in_dir. Received: out_dir={out_dir!r}")
    manifest = read_manifest(in_dir)
    majority = majority_labels(in_dir, attributes, min_images)
    changed: Dict[str, int] = collections.Counter()
    shards = collections.Counter(os.path.basename(p).rsplit("-", 3)[0] for p in _shards(in_dir))
    keep = {k: manifest[k] for k in ("converter", "converter_version", "source_files", "split_source",
                                     "fingerprint", "options") if k in manifest}
    extra = {**keep, "voted": {"from": os.path.abspath(in_dir), "attributes": list(attributes),
                               "min_images": min_images, "fill_missing": fill_missing,
                               "method": "per-identity majority vote (Wang et al., ICMR 2017, Sec. 3.2)"}}
    with ShardWriter(out_dir, num_shards=dict(shards), overwrite=overwrite, extra=extra, balance="bytes") as w:
        for path in _shards(in_dir):
            for rec in iter_records(path):
                if rec.identity is not None:
                    for name in attributes:
                        for i in range(rec.num_faces):
                            value = majority.get((rec.dataset, int(rec.identity[i]), name))
                            if value is None or not rec.has_identity[i]:
                                continue
                            if name not in rec.attributes:
                                if not fill_missing:
                                    continue
                                rec.attributes[name] = np.zeros(rec.num_faces, np.int64)
                                rec.has_attributes[name] = np.zeros(rec.num_faces, np.int64)
                            has = rec.has_attributes[name][i]
                            if (has or fill_missing) and (not has or rec.attributes[name][i] != value):
                                rec.attributes[name][i] = value
                                rec.has_attributes[name][i] = 1
                                changed[name] += 1
                w.write(rec)
        w.extra["voted"]["changed"] = dict(changed)
    return dict(changed)


def register_vote(subparsers) -> None:
    p = subparsers.add_parser("vote-attributes", help="per-identity majority vote of attribute labels")
    p.add_argument("in_dir")
    p.add_argument("out_dir")
    p.add_argument("--attributes", nargs="+", default=None,
                   help=f"attributes to vote (default: {' '.join(IDENTITY_ATTRIBUTES)})")
    p.add_argument("--min-images", type=int, default=2)
    p.add_argument("--fill-missing", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    changed = vote_attributes(args.in_dir, args.out_dir, args.attributes, args.min_images, args.fill_missing,
                              args.overwrite)
    total = sum(changed.values())
    print(f"{args.out_dir}: {total} labels changed by the vote"
          + (": " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) if changed else ""))
    return 0


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m tfrecords_tools.vote_attributes")
    sub = parser.add_subparsers(dest="command")
    register_vote(sub)
    sys.exit(_run(parser.parse_args(["vote-attributes"] + sys.argv[1:])))
