"""MORPH II S1 / S2 / S3 protocol (Guo and Mu 2011; TFN Table V): balanced, subject-disjoint,
deterministic subsets, through the ``morph`` converter."""

import json
import random

import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.regression_error import average_fold_error
from tests.fixtures_layouts import read_dataset, write_image, write_text
from tfrecords_tools.convert_morph import FOLDS, MorphConverter, assign_protocol_subsets

# subject prefix, race, gender, subjects, images each. Size 16: quotas BF 2, BM 6, WF 2, WM 6.
GROUPS = [("bf", "B", "F", 5, 1), ("bm", "B", "M", 6, 2), ("wf", "W", "F", 3, 1), ("wm", "W", "M", 5, 3),
          ("hm", "H", "M", 2, 1), ("am", "A", "F", 1, 2)]
CODES = {"W": 0, "B": 1, "A": 2, "H": None}


def _rows():
    rows = []
    for prefix, race, gender, subjects, each in GROUPS:
        for s in range(subjects):
            for k in range(each):
                rows.append((f"{prefix}{s}_{k}", f"{prefix}{s}", race, gender))
    rows += [("mixed_0", "mixed", "B", "M"), ("mixed_1", "mixed", "W", "M")]  # labels disagree
    return rows


def _images(rows):
    return [(key, sid, int(g == "M"), CODES[race]) for key, sid, race, g in rows]


def test_subsets_are_balanced_subject_disjoint_and_deterministic():
    rows = _rows()
    out = assign_protocol_subsets(_images(rows), subset_size=16, seed=0)
    count = {}
    for key, sid, race, g in rows:
        count.setdefault((out[key], race + g), 0)
        count[(out[key], race + g)] += 1
    for subset in ("s1", "s2"):
        # Black : White = 1 : 1 and Female : Male = 1 : 3 wherever the data allows.
        assert count[(subset, "BF")] == 2 and count[(subset, "BM")] == 6 and count[(subset, "WM")] == 6
    assert {count[("s1", "WF")], count[("s2", "WF")]} == {1, 2}  # 3 white women: one subset runs short
    # The fifth white man (3 images) fits neither quota; the mixed subject adds one W and one B row.
    assert count[("s3", "WM")] == 3 + 1 and count[("s3", "BF")] == 1 and count[("s3", "BM")] == 1
    for key, sid, race, g in rows:
        if race in ("H", "A") or sid == "mixed":
            assert out[key] == "s3"
    subsets_of = {}
    for key, sid, _, _ in rows:
        subsets_of.setdefault(sid, set()).add(out[key])
    assert all(len(v) == 1 for v in subsets_of.values())  # nobody in two subsets
    shuffled = _images(rows)
    random.Random(3).shuffle(shuffled)
    assert assign_protocol_subsets(shuffled, subset_size=16, seed=0) == out  # order independent
    assert assign_protocol_subsets(_images(rows), subset_size=16, seed=1) != out  # the seed orders subjects
    with pytest.raises(ConfigError, match="subset_size=4"):
        assign_protocol_subsets(_images(rows), subset_size=4)


def test_converter_writes_s1_s2_s3_from_a_csv(tmp_path):
    root = tmp_path / "morph"
    header = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
    lines = [header]
    for i, (key, sid, race, g) in enumerate(_rows()):
        rel = f"Album2/{key}.JPG"
        write_image(str(root / rel), i)
        lines.append(f"{sid},{i:02d},01/01/1980,01/01/2000,{race},{g},0,{20 + i % 40},0,0,{rel}")
    write_text(str(root / "morph.csv"), lines)
    from tfrecords_tools.common import run_conversion

    run_conversion(MorphConverter(str(root), protocol="s123", subset_size=16), str(tmp_path / "out"),
                   workers=1, verify_records=2)
    recs = read_dataset(str(tmp_path / "out"))
    expected = assign_protocol_subsets(_images(_rows()), subset_size=16, seed=0)
    assert {sid: r.split for sid, r in recs.items()} == {f"Album2/{k}.JPG": v for k, v in expected.items()}
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    counts = manifest["notes"]["protocol_subsets"]
    assert sum(counts["s1"].values()) == sum(v == "s1" for v in expected.values())
    assert "S1/S2/S3" in manifest["split_source"]
    with pytest.raises(ConfigError, match="protocol='s4'"):
        MorphConverter(str(root), protocol="s4")


def test_folds_and_avg_e():
    assert FOLDS == (("s1", ("s2", "s3")), ("s2", ("s1", "s3")))
    # TFN's Table V folds: 3.23 and 3.18 -> Avg.E 3.205.
    assert average_fold_error([3.23, 3.18]) == pytest.approx(3.205)
    with pytest.raises(ConfigError):
        average_fold_error([])
    with pytest.raises(ConfigError):
        average_fold_error([3.0, float("nan")])
