"""Export and deployment: .keras, TF Serving SavedModel, TFLite and ONNX, verified in each runtime.

* ``keras_format``: ``save_model`` / ``load_model`` (safe mode, registered classes only).
* ``signatures``: the three serving signatures and the output-name mapping.
* ``saved_model``: versioned SavedModel export, ``saved_model_cli`` runner, REST bodies.
* ``tflite``: float32 / float16 / dynamic-range / int8 conversion and the LiteRT runner.
* ``onnx_export``: tf2onnx conversion and the onnxruntime runner.
* ``verify``: every artifact against the Keras model on real examples.
* ``verification_data``: those examples from the input pipeline.
* ``model_source``: the model from a run directory (checkpoint + run_config.json) or a .keras file.
* ``manifest``: ``manifest.json``.
* ``exporter``: ``export_model`` (all of the above, atomically).
* ``export_command``: the ``facemt export`` subcommand.
"""
