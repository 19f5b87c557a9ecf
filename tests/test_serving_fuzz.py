"""``serve_image_bytes`` under fuzzed requests, through the graph loader TF Serving uses.

The SavedModel is loaded with the TF1 ``loader.load`` into a ``Session`` (the
MetaGraph and signature_def path of TF Serving and ``saved_model_cli run``), and
every bad request must fail with an ``InvalidArgumentError`` for that request
alone: the good request after it is still answered, with the same outputs.
"""

import struct

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.data.codec import MAX_IMAGE_PIXELS, encode_image
from keras_facemt.serving import signatures as sig
from keras_facemt.serving.saved_model import export_saved_model
from tests import trainer_fixtures as fx


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("serving") / "1")
    export_saved_model(fx.tiny_model(), export_dir, frozen_domain=0, signature_names=(sig.SERVE_IMAGE_BYTES,))
    graph = tf.Graph()
    with graph.as_default():
        sess = tf.compat.v1.Session(graph=graph)
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    signature = meta.signature_def[sig.SERVE_IMAGE_BYTES]
    feed = signature.inputs[sig.IMAGE_BYTES].name
    fetches = {k: v.name for k, v in signature.outputs.items()}

    def run(images):
        return sess.run(fetches, {feed: np.array(images, dtype=object)})

    yield run
    sess.close()


def _jpeg(seed=0, size=40):
    return encode_image(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8), "jpeg")


def _png(seed=0, size=40):
    return encode_image(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8), "png")


def _huffman_damaged(data):
    data = bytearray(data)
    at = data.find(b"\xff\xc4")
    data[at + 5 : at + 21] = b"\xff" * 16
    return bytes(data)


def _huge(data, fmt):
    data = bytearray(data)
    if fmt == "jpeg":
        at = data.find(b"\xff\xc0")
        data[at + 5 : at + 9] = struct.pack(">HH", 60000, 60000)
    else:
        data[16:24] = struct.pack(">II", 9000, 9000)
    return bytes(data)


def _bad_requests(rng):
    jpeg, png = _jpeg(), _png()
    middle = len(png) // 2
    cases = [
        ("random_bytes", [rng.bytes(int(rng.integers(1, 3000)))], "not a JPEG or PNG"),
        ("zero_length", [b""], "not a JPEG or PNG"),
        ("jpeg_magic_only", [b"\xff\xd8\xff"], "truncated"),
        ("truncated_jpeg", [jpeg[: len(jpeg) // 2]], "truncated"),
        ("truncated_png", [png[: len(png) * 2 // 3]], "truncated"),
        ("jpeg_corrupt_inside_markers", [_huffman_damaged(jpeg)], "JPEG"),
        ("png_corrupt_inside_markers", [png[:middle] + bytes(b ^ 0x5A for b in png[middle : middle + 16])
                                        + png[middle + 16 :]], "PNG"),
        ("jpeg_huge_declared_size", [_huge(jpeg, "jpeg")], f"more than {MAX_IMAGE_PIXELS}"),
        ("png_huge_declared_size", [_huge(png, "png")], f"more than {MAX_IMAGE_PIXELS}"),
        ("batch_with_one_bad_element", [jpeg, png, b"GIF89a" + rng.bytes(64), jpeg], "element"),
    ]
    # Random damage of a real JPEG: any of the cases above, wherever it lands.
    for i in range(8):
        damaged = bytearray(jpeg)
        for at in rng.integers(2, len(damaged) - 2, 12):
            damaged[at] = int(rng.integers(0, 256))
        cases.append((f"random_flips_{i}", [bytes(damaged)], None))
    return cases


def test_each_bad_request_fails_alone_and_the_next_good_one_is_answered(session):
    rng = np.random.default_rng(7)
    good = [_jpeg(1), _png(2)]
    expected = session(good)
    assert expected["landmarks"].shape == (2, fx.POINTS, 2)
    failures = 0
    for name, images, message in _bad_requests(rng):
        try:
            session(images)
        except tf.errors.InvalidArgumentError as e:
            failures += 1
            if message is not None:
                assert message in e.message, (name, e.message[:300])
            if name == "batch_with_one_bad_element":
                assert "element" in e.message and "2" in e.message, e.message[:300]
        else:
            # Random flips may leave a decodable image: then it is simply answered.
            assert name.startswith("random_flips"), name
        served = session(good)
        for key, value in expected.items():
            np.testing.assert_allclose(served[key], value, atol=1e-6, err_msg=f"{key} after {name}")
    assert failures >= 10
