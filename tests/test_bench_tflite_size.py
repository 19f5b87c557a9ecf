"""``bench/bench_tflite_size.py`` runs and its table adds up (tiny preset, one ITER)."""

import importlib.util
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    path = os.path.join(ROOT, "bench", "bench_tflite_size.py")
    spec = importlib.util.spec_from_file_location("bench_tflite_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_size_table_adds_up_and_names_the_floor(tmp_path, capsys):
    bench = _bench()
    assert bench.main(["--presets", "tiny", "--iterations", "preset", "--json", str(tmp_path / "sizes.json")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 1
    # float32 and int8 columns: "total = part + part ...", each adding up (KiB, rounded).
    for cell in re.findall(r"([\d,]+) = ([\d,+ ]+)", rows[0]):
        total = int(cell[0].replace(",", ""))
        parts = [int(p.replace(",", "")) for p in cell[1].split("+")]
        assert abs(sum(parts) - total) <= len(parts), rows[0]
    # The floor is judged on iFAN small only, which this run did not measure.
    assert "not measured" in out
    raw = json.load(open(tmp_path / "sizes.json"))
    (row,) = raw["rows"]
    f32, int8 = row["float32"], row["int8"]
    assert int8["quantization_bytes"] > 0 == f32["quantization_bytes"]
    assert f32["constant_bytes"] > 3.5 * int8["constant_bytes"]
    assert int8["stripped_bytes"] < int8["total_bytes"]
    assert "tensorflow" in raw["machine"]
