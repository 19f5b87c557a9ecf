"""``data/synthetic_cache``: one rendering per dataset, however many processes ask for it."""

import os
import subprocess
import sys
import time

from keras_facemt.data.synthetic_cache import cached_synthetic
from keras_facemt.io import exclusive_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A process that waits for the go file, then asks for the dataset and logs through print.
_ASK = """
import os, sys, time
from keras_facemt.data.synthetic_cache import cached_synthetic
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
cached_synthetic("landmarks", tasks=("landmarks",), domain="studio", splits=(("train", 24), ("test", 8)), seed=3,
                 image_size=32, cache_dir=sys.argv[1], log=lambda line: print(line, flush=True))
"""


def _ask(cache_dir, go):
    return subprocess.Popen([sys.executable, "-c", _ASK, str(cache_dir), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_asking_together_render_once_and_share_the_copy(tmp_path):
    # The key directory does not depend on the cache root: learn it from a first cache.
    first = cached_synthetic("landmarks", tasks=("landmarks",), domain="studio", splits=(("train", 24), ("test", 8)),
                             seed=3, image_size=32, cache_dir=str(tmp_path / "a"))
    key = os.path.basename(os.path.dirname(first))
    shared = tmp_path / "b"
    go = tmp_path / "go"
    # Holding the dataset's lock until both processes are past their start makes them
    # ask at the same moment; without the lock they would both render.
    with exclusive_lock(str(shared / key / ".landmarks.lock")):
        procs = [_ask(shared, go) for _ in range(2)]
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        time.sleep(1.0)
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    renders = sum(out.count("Rendering SynthFace") for out, _ in outs)
    assert renders == 1, [out for out, _ in outs]
    final = shared / key / "landmarks"
    assert sorted(os.listdir(shared / key)) == [".landmarks.lock", "landmarks", "spec.json"]
    assert (final / "dataset.json").exists()
