"""Shared conversion behaviour: image headers, atomic and idempotent runs, parallel
workers, size-balanced shards, the pre-commit decode check, the CLI and inspect."""

import glob
import json
import os

import cv2
import numpy as np
import pytest

from keras_facemt.data.codec import FaceRecord
from keras_facemt.data.shards import ShardWriter
from keras_facemt.errors import DataError
from tests.fixtures_layouts import ALL_BAD, face_image, make_mtfl, read_dataset
from tfrecords_tools import common, image_header
from tfrecords_tools.convert_mtfl import MtflConverter


@pytest.mark.parametrize("ext,size", [(".jpg", (37, 53)), (".png", (64, 20)), (".jpg", (250, 250))])
def test_probe_image_reads_size_without_decoding(ext, size):
    h, w = size
    ok, buf = cv2.imencode(ext, face_image(0, w, h))
    fmt, ph, pw = image_header.probe_image(buf.tobytes())
    assert (fmt, ph, pw) == ("jpeg" if ext == ".jpg" else "png", h, w)


def test_probe_image_rejects_damaged_files():
    ok, buf = cv2.imencode(".jpg", face_image(0))
    data = buf.tobytes()
    for bad, reason in [(b"", "empty"), (b"<html>404</html>", "not a JPEG or PNG"),
                        (data[: len(data) // 2], "truncated"), (data[:40], "truncated|frame header")]:
        with pytest.raises(image_header.ImageHeaderError, match=reason):
            image_header.probe_image(bad)
    ok, png = cv2.imencode(".png", face_image(0))
    with pytest.raises(image_header.ImageHeaderError, match="IEND"):
        image_header.probe_image(png.tobytes()[:-20])


def test_other_formats_are_transcoded_losslessly(tmp_path):
    img = face_image(3, 40, 30)
    cv2.imwrite(str(tmp_path / "a.bmp"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    sample = common.Sample(str(tmp_path / "a.bmp"), "a.bmp", "train", "list.txt:1", [common.Face()])
    serialized, rec, _ = common.build_record(sample, common.RecordOptions("d"))
    back = FaceRecord.from_example(serialized)
    assert back.image_format == "png" and (back.height, back.width) == (30, 40)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imdecode(np.frombuffer(back.image, np.uint8), 1),
                                               cv2.COLOR_BGR2RGB), img)


def test_manifest_records_sources_counts_and_problems(tmp_path):
    lay = make_mtfl(str(tmp_path / "src"), bad=ALL_BAD)
    common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"), verify_records=2)
    m = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert m["converter"] == "mtfl" and m["converter_version"] == MtflConverter.version
    assert m["counts"] == {"train": 2, "test": 1}
    assert {s["path"] for s in m["source_files"]} == {"training.txt", "testing.txt"}
    assert all(len(s["sha256"]) == 64 for s in m["source_files"])
    assert m["presence"]["train"]["landmarks"] == 2 and m["presence"]["train"]["gender"] == 2
    assert m["attribute_histograms"]["pose_bin"] == {"2": 1, "0": 1, "4": 1}
    assert m["problems"]["skipped"] == 5 and set(m["problems"]["by_kind"]) == set(ALL_BAD)
    assert m["landmark_schemes"] == {"mtfl5": 3}


def test_rerun_is_idempotent_and_changed_input_needs_overwrite(tmp_path):
    lay = make_mtfl(str(tmp_path / "src"))
    out = str(tmp_path / "out")
    first = common.run_conversion(MtflConverter(**lay.kwargs), out, verify_records=1)
    before = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "*"))}
    again = common.run_conversion(MtflConverter(**lay.kwargs), out, verify_records=1)
    assert again.up_to_date and again.counts == first.counts
    assert {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "*"))} == before
    with open(os.path.join(lay.root, "testing.txt"), "a") as f:
        f.write("\n")  # a changed annotation file changes the fingerprint
    with pytest.raises(DataError, match="--overwrite"):
        common.run_conversion(MtflConverter(**lay.kwargs), out, verify_records=1)
    assert not common.run_conversion(MtflConverter(**lay.kwargs), out, overwrite=True, verify_records=1).up_to_date


def test_interrupted_run_never_looks_complete(tmp_path, monkeypatch):
    lay = make_mtfl(str(tmp_path / "src"))
    calls = []
    real = common.build_record

    def dies(sample, opts):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(sample, opts)

    monkeypatch.setattr(common, "build_record", dies)
    with pytest.raises(KeyboardInterrupt):
        common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if p != "src"] == []


def test_parallel_workers_match_serial_and_shards_balance_bytes(tmp_path):
    lay = make_mtfl(str(tmp_path / "src"))
    for k in range(24):  # more entries, very different sizes
        rel = f"lfw_5590/extra_{k}.jpg"
        from tests.fixtures_layouts import write_image

        size = 32 if k % 3 else 128
        write_image(os.path.join(lay.root, rel), 100 + k, size, size)
        with open(os.path.join(lay.root, "training.txt"), "a") as f:
            c = size / 64
            f.write(f"{rel.replace('/', chr(92))} {24*c} {40*c} {32*c} {26*c} {38*c} {26*c} {26*c} {34*c} {44*c} "
                    f"{44*c} 1 2 2 3\n")
    serial = common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "a"), num_shards=3)
    parallel = common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "b"), num_shards=3, workers=2,
                                     chunksize=4)
    assert serial.counts == parallel.counts == {"train": 26, "test": 1}
    a, b = read_dataset(str(tmp_path / "a")), read_dataset(str(tmp_path / "b"))
    assert a.keys() == b.keys()
    for sid in a:
        assert a[sid].serialize() == b[sid].serialize()
    sizes = json.loads((tmp_path / "b" / "dataset.json").read_text())["shard_bytes"]["train"]
    largest = max(len(r.serialize()) for r in b.values())
    assert max(sizes) - min(sizes) <= largest


def test_verify_sample_rejects_a_record_the_pipeline_cannot_decode(tmp_path):
    ok, buf = cv2.imencode(".jpg", face_image(0, 32, 32))
    wrong = FaceRecord(image=buf.tobytes(), height=40, width=32, source_id="liar.jpg", dataset="d")
    with ShardWriter(str(tmp_path / "ds")) as w:
        w.write(wrong)
    with pytest.raises(DataError, match="liar.jpg.*decodes to"):
        common.verify_sample(str(tmp_path / "ds"), 4)


def test_failed_verification_commits_nothing(tmp_path, monkeypatch):
    lay = make_mtfl(str(tmp_path / "src"))

    def reject(data_dir, num=32, seed=0):
        raise DataError("record 'x' fails the pipeline decoder")

    monkeypatch.setattr(common, "verify_sample", reject)
    with pytest.raises(DataError, match="pipeline decoder"):
        common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_every_entry_bad_is_an_error(tmp_path):
    lay = make_mtfl(str(tmp_path / "src"))
    for rel in lay.expected:
        os.remove(os.path.join(lay.root, rel))
    with pytest.raises(DataError, match="every mtfl entry was skipped"):
        common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"))


def test_cli_convert_inspect_and_strict(tmp_path, capsys):
    from keras_facemt.cli import main

    lay = make_mtfl(str(tmp_path / "src"), bad=("missing_image",))
    out = str(tmp_path / "mtfl")
    assert main(["convert", "mtfl", "--root", lay.root, "--out", out, "--workers", "1", "--quiet"]) == 0
    assert "wrote 3 records" in capsys.readouterr().out
    assert main(["convert", "mtfl", "--root", lay.root, "--out", out, "--workers", "1", "--strict"]) == 2
    assert lay.bad["missing_image"] in capsys.readouterr().err
    sheet = str(tmp_path / "sheet.png")
    assert main(["inspect", out, "--num", "3", "--sheet", sheet]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "pose_bin" in text and "missing_image=1" in text
    img = cv2.imread(sheet)
    assert img is not None and img.shape[0] > 256


def test_inspect_detects_shards_that_disagree_with_the_manifest(tmp_path):
    from tfrecords_tools.inspect_dataset import statistics

    lay = make_mtfl(str(tmp_path / "src"))
    out = tmp_path / "out"
    common.run_conversion(MtflConverter(**lay.kwargs), str(out))
    os.remove(glob.glob(str(out / "test-*.tfrecord"))[0])
    with pytest.raises(DataError, match="shards disagree"):
        statistics(str(out))


@pytest.mark.parametrize("kind", ["malformed_line", "corrupt_image"])
def test_strict_with_workers_stops_on_parse_and_worker_defects(tmp_path, kind):
    lay = make_mtfl(str(tmp_path / "src"), bad=(kind,))
    with pytest.raises(DataError, match=lay.bad[kind]):
        common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"), workers=2, strict=True,
                              chunksize=1)
    assert not (tmp_path / "out").exists()


def test_registry_lists_every_layout():
    from keras_facemt.errors import ConfigError
    from tfrecords_tools.registry import CONVERTERS, get_converter

    for name in CONVERTERS:
        cls = get_converter(name)
        assert issubclass(cls, common.Converter) and cls.name == name
    with pytest.raises(ConfigError, match="celebA"):
        get_converter("celebA")


def test_progress_bar_reports_rate(tmp_path):
    import io

    stream = io.StringIO()
    bar = common.ProgressBar(3, "convert x", unit="img/s", stream=stream, log_interval_s=3600)
    for _ in range(3):
        bar.update()
    bar.close()
    # Not a terminal: one line, when the last image is done.
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convert x 3/3 [") and "img/s" in lines[0]


@pytest.mark.parametrize("kwargs,name", [({"workers": 0}, "workers"), ({"num_shards": 0}, "num_shards"),
                                         ({"tolerance": -0.1}, "tolerance"), ({"shard_mb": 0}, "shard_mb")])
def test_bad_run_options_are_config_errors(tmp_path, kwargs, name):
    from keras_facemt.errors import ConfigError

    lay = make_mtfl(str(tmp_path / "src"))
    with pytest.raises(ConfigError, match=f"Received: {name}="):
        common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"), **kwargs)


def test_missing_annotation_files_and_bad_fractions_are_clear_errors(tmp_path):
    from keras_facemt.errors import ConfigError
    from tfrecords_tools.convert_aflw import AflwConverter
    from tfrecords_tools.convert_celeba import CelebAConverter

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="training.txt"):
        MtflConverter(str(tmp_path / "empty")).source_files()
    with pytest.raises(DataError, match="list_attr_celeba.txt"):
        CelebAConverter(str(tmp_path / "empty")).source_files()
    with pytest.raises(DataError, match="aflw.sqlite"):
        AflwConverter(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="does not exist"):
        MtflConverter(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "aflw.sqlite").write_bytes(b"")
    with pytest.raises(ConfigError, match="val_fraction=0.6"):
        AflwConverter(str(tmp_path / "empty"), val_fraction=0.6, test_fraction=0.5)


@pytest.mark.parametrize("saved_as", [".JPG", ".jpeg", ".Png", ".bmp", ".ppm", ".pgm", ".tif"])
def test_image_beside_an_annotation_is_found_whatever_its_extension_and_case(tmp_path, saved_as):
    """A 300-W ``.pts`` file and an MTFL list both name ``.jpg``; the copy on disk has
    another extension or case. The image is found, and formats other than JPEG/PNG are
    stored as PNG with exactly the decoded pixels."""
    from tfrecords_tools.convert_300w import Pts68Converter

    src = tmp_path / "src" / "lfpw" / "trainset"
    src.mkdir(parents=True)
    img = face_image(5, 48, 40)
    gray = saved_as == ".pgm"
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY if gray else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(saved_as.lower(), bgr)
    assert ok
    (src / ("image_0001" + saved_as)).write_bytes(buf.tobytes())
    # Written literally (68 points inside the 48x40 image), not with a fixture helper.
    pts = "\n".join(f"{4 + (k % 17) * 2.0:.1f} {6 + (k // 17) * 7.0:.1f}" for k in range(68))
    (src / "image_0001.pts").write_text(f"version: 1\nn_points: 68\n{{\n{pts}\n}}\n")

    result = common.run_conversion(Pts68Converter(root=str(tmp_path / "src")), str(tmp_path / "out"))
    assert dict(result.counts) == {"train": 1} and result.problems.total == 0
    (rec,) = read_dataset(str(tmp_path / "out")).values()
    assert rec.source_id == "lfpw/trainset/image_0001" + saved_as
    assert (rec.height, rec.width) == (40, 48)
    decoded = cv2.imdecode(np.frombuffer(rec.image, np.uint8), cv2.IMREAD_UNCHANGED)
    if saved_as.lower() in (".jpg", ".jpeg"):
        assert rec.image_format == "jpeg" and rec.image == buf.tobytes()  # original bytes kept
    else:
        assert rec.image_format == "png"
        expected = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # lossless: the very pixels on disk
        np.testing.assert_array_equal(decoded.reshape(expected.shape[:2] + (-1,))[..., :1 if gray else 3],
                                      expected.reshape(expected.shape[:2] + (-1,)))


def test_listed_image_is_found_in_another_case_and_a_truly_missing_one_is_reported(tmp_path):
    lay = make_mtfl(str(tmp_path / "src"))
    os.rename(tmp_path / "src" / "net_7876" / "0000001.jpg", tmp_path / "src" / "net_7876" / "0000001.JPG")
    os.rename(tmp_path / "src" / "AFLW" / "0001-image20056.jpg", tmp_path / "src" / "AFLW" / "gone.jpg")
    result = common.run_conversion(MtflConverter(**lay.kwargs), str(tmp_path / "out"))
    recs = read_dataset(str(tmp_path / "out"))
    assert "net_7876/0000001.jpg" in recs
    assert dict(result.problems.counts) == {common.MISSING_IMAGE: 1}
    (message,) = result.problems.messages
    assert "0001-image20056.jpg" in message
