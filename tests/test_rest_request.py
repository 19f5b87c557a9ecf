"""The TF Serving REST body, against bodies written out by hand in the row format of
the TF Serving REST API docs (``{"signature_name": ..., "instances": [...]}``, binary
values as ``{"b64": "<base64>"}``), not against this module's own encoder."""

import json

import numpy as np

from keras_facemt.serving.saved_model import rest_request, rest_request_to_inputs

# base64("\xff\xd8jpeg") and base64("PNG!"), by hand.
BODY_WITH_DOMAIN = """{
  "signature_name": "serve_image_bytes",
  "instances": [
    {"image_bytes": {"b64": "/9hqcGVn"}, "domain": 2},
    {"image_bytes": {"b64": "UE5HIQ=="}, "domain": 0}
  ]
}"""
BODY_FROZEN = '{"signature_name": "serve_image_bytes", "instances": [{"b64": "/9hqcGVn"}, {"b64": "UE5HIQ=="}]}'
IMAGES = [b"\xff\xd8jpeg", b"PNG!"]


def test_encoder_writes_the_documented_body():
    assert json.loads(rest_request(IMAGES, [2, 0])) == json.loads(BODY_WITH_DOMAIN)
    assert json.loads(rest_request(IMAGES)) == json.loads(BODY_FROZEN)


def test_documented_body_decodes_to_signature_inputs():
    inputs = rest_request_to_inputs(BODY_WITH_DOMAIN, ["image_bytes", "domain"])
    assert list(inputs["image_bytes"]) == IMAGES
    np.testing.assert_array_equal(inputs["domain"], [2, 0])
    frozen = rest_request_to_inputs(BODY_FROZEN, ["image_bytes"])
    assert list(frozen["image_bytes"]) == IMAGES
