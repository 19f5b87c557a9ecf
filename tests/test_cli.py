import pytest

from keras_facemt.cli import build_parser, main


def test_every_documented_command_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("train", "bench", "predict", "synth", "convert", "inspect", "export"):
        assert name in sub.choices, name


def test_unknown_recipe_and_benchmark_are_named(capsys):
    assert main(["train", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "No training recipe for 'nosuch'" in err and "ifan" in err
    assert main(["bench", "nosuch"]) == 2
    assert "Unknown benchmark 'nosuch'" in capsys.readouterr().err


def test_train_forwards_arguments_to_the_recipe(capsys):
    # --help of the recipe proves the arguments reached it; argparse exits 0.
    assert main(["train", "ifan", "--", "--help"]) == 0
    assert "--experiment" in capsys.readouterr().out


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2
