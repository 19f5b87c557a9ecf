"""Benchmarks fail loudly: a missed floor, an unmeasured row or missing SynthFace is a
non-zero exit or an error, never a quieter number (``bench/bench_pipeline.py``,
``bench/bench_inference.py``; ``bench_tflite_size`` has its own test)."""

import sys

import pytest

from tests.helpers import load_script


def _inference_result(threads, rows, peak=100.0):
    return {"threads": threads, "matmul_gflops": peak, "rows": rows}


def _row(preset, fmt, fraction):
    return {"preset": preset, "format": fmt, "gflops_per_image": 1.0, "latency_ms_b1": 1.0, "images_per_s": 1.0,
            "achieved_gflops": fraction * 100, "fraction_of_peak": fraction}


def test_inference_floor_passes_only_when_a_float_format_reaches_it():
    bench = load_script("bench", "bench_inference")
    line, ok = bench.floor_check([_inference_result(1, [_row("paper", "saved_model", 0.30)])])
    assert ok and "PASS" in line
    line, ok = bench.floor_check([_inference_result(1, [_row("paper", "saved_model", 0.20)])])
    assert not ok and "FAIL" in line
    # int8 against the float peak is reported, never what passes the floor.
    line, ok = bench.floor_check([_inference_result(1, [_row("paper", "saved_model", 0.20),
                                                        _row("paper", "tflite_int8", 0.90)])])
    assert not ok and "tflite_int8: 90%" in line


def test_inference_error_row_or_unmeasured_floor_fails():
    bench = load_script("bench", "bench_inference")
    error = {"preset": "paper", "format": "onnx", "error": "converter exploded"}
    line, ok = bench.floor_check([_inference_result(2, [_row("paper", "saved_model", 0.40), error])])
    assert not ok and "paper/onnx/2t" in line
    # Only the error row measured paper: the floor itself went unmeasured.
    line, ok = bench.floor_check([_inference_result(1, [error])])
    assert not ok and "not measured" in line
    # A run that did not ask for paper says so and is not a failure.
    line, ok = bench.floor_check([_inference_result(1, [_row("small", "saved_model", 0.1)])], requested=False)
    assert ok and "not judged" in line


def test_pipeline_without_synthface_is_an_error(tmp_path, monkeypatch):
    bench = load_script("bench", "bench_pipeline")
    monkeypatch.setitem(sys.modules, "keras_facemt.data.synthetic", None)
    with pytest.raises(ImportError):
        bench.write_shards(str(tmp_path / "shards"), 8)
    with pytest.raises(ImportError):
        bench.bench_synthface(2)


@pytest.mark.parametrize("step_rate,code", [(1e9, 1), (1e-3, 0)])
def test_pipeline_exit_status_is_the_floor_verdict(monkeypatch, capsys, step_rate, code):
    """The real shards and pipeline; the training step is replaced by a rate that
    misses (1e9 examples/s) or meets (1e-3) the 5x floor."""
    bench = load_script("bench", "bench_pipeline")
    monkeypatch.setattr(bench, "bench_ifan_step", lambda *a: (step_rate, 32))
    argv = ["--examples", "16", "--batch", "4", "--batches", "2", "--renders", "2"]
    assert bench.main(argv) == code
    assert ("BELOW the 5x floor" in capsys.readouterr().out) == (code == 1)


def _peers(dlib_ms, uniface_ms, pipeline_ms):
    def row(ms):
        return None if ms is None else {"faces": {str(n): {"ms": v, "hog_found": 0.0} for n, v in zip((1, 5, 20), ms)},
                                        "peak_rss_mb": 100.0}
    return {"dlib": row(dlib_ms), "uniface_float32": row(uniface_ms), "uniface_int8": row(uniface_ms),
            "pipeline_float32": row(pipeline_ms), "pipeline_int8": row(pipeline_ms)}


def test_peers_floors_are_judged_against_dlib(capsys):
    import argparse

    bench = load_script("bench", "bench_peers")
    args = argparse.Namespace(images=1, repeats=1)
    assert bench.report(_peers((100, 500, 2000), (10, 10, 20), (50, 100, 300)), True, args) == 0
    assert capsys.readouterr().out.count("PASS") == 3
    # 20 faces: Uniface only 40x faster than dlib (floor 50x).
    assert bench.report(_peers((100, 500, 2000), (10, 10, 50), (50, 100, 300)), True, args) == 1
    assert "FAIL  uniface_float32 at 20 face(s): 40.0x" in capsys.readouterr().out
    # An unmeasured row fails the run whatever the others say.
    assert bench.report(_peers((100, 500, 2000), (10, 10, 20), None), True, args) == 1
    assert "rows not measured: ['pipeline_float32', 'pipeline_int8']" in capsys.readouterr().out


def test_peers_without_dlib_reports_own_rows_and_how_to_install(capsys):
    import argparse

    bench = load_script("bench", "bench_peers")
    results = {k: v for k, v in _peers(None, (10, 10, 20), (50, 100, 300)).items() if k != "dlib"}
    assert bench.report(results, False, argparse.Namespace(images=1, repeats=1)) == 0
    out = capsys.readouterr().out
    assert "pip install -e .[peers]" in out and "uniface_int8" in out


def test_tfn_bench_fails_when_a_row_cannot_be_measured(monkeypatch, capsys):
    bench = load_script("bench", "bench_tfn")

    def fake(graph, two_step, n_faces, preset, batch, repeats):
        if graph == "training" and n_faces == 20 and not two_step:
            raise RuntimeError("out of memory")
        return 0.010 if two_step else 0.008

    monkeypatch.setattr(bench, "measure", fake)
    assert bench.main(["--repeats", "1"]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "training/20 faces/one-step: RuntimeError: out of memory" in out
    assert "+2.00" in out and "+25.0%" in out  # the measured rows are still printed
    monkeypatch.setattr(bench, "measure", lambda *a: 0.01)
    assert bench.main(["--repeats", "1"]) == 0


def test_tfn_bench_measures_a_real_row():
    bench = load_script("bench", "bench_tfn")
    assert 0 < bench.measure("serving", True, 2, "tiny", 1, 1) < 60
