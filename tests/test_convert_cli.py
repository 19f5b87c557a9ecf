"""`facemt convert <layout>` wires every layout's options to its converter."""

import pytest

from keras_facemt.cli import main
from tests import fixtures_layouts as fx
from tests.fixtures_layouts import read_dataset

LAYOUTS = [
    ("wider_face", fx.make_wider_face), ("fddb", fx.make_fddb), ("aflw", fx.make_aflw), ("300w", fx.make_300w),
    ("helen_parsing", fx.make_helen_parsing), ("mtfl", fx.make_mtfl), ("celeba", fx.make_celeba),
    ("lfw", fx.make_lfw), ("identity_folders", fx.make_identity_folders), ("morph", fx.make_morph),
    ("imdb_wiki", fx.make_imdb_wiki), ("adience", fx.make_adience), ("emotion_folders", fx.make_emotion_folders),
    ("jsonl", fx.make_jsonl),
]
FLAGS = {"retinaface_dir": "--retinaface-dir", "list_file": "--list", "seed": "--seed",
         "val_fraction": "--val-fraction", "test_fraction": "--test-fraction"}


@pytest.mark.parametrize("layout,make", LAYOUTS, ids=[name for name, _ in LAYOUTS])
def test_cli_converts_each_layout(tmp_path, capsys, layout, make):
    lay = make(str(tmp_path / "src"))
    argv = ["convert", layout, "--out", str(tmp_path / "out"), "--workers", "1", "--verify-records", "2"]
    for key, value in lay.kwargs.items():
        if key == "root":
            argv += ["--root", value]
        elif key == "in_the_wild":
            argv += ["--in-the-wild"] if value else []
        elif value is not None:
            argv += [FLAGS[key], str(value)]
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(read_dataset(str(tmp_path / "out"))) == sorted(lay.expected)
