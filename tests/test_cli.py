import pytest

from keras_facemt.cli import build_parser, main


def test_every_documented_command_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("train", "bench", "predict", "synth", "convert", "inspect", "export"):
        assert name in sub.choices, name


def test_unknown_recipe_and_benchmark_are_named(capsys):
    assert main(["train", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "Unknown system 'nosuch'" in err and "ifan" in err
    assert main(["bench", "nosuch"]) == 2
    assert "Unknown benchmark 'nosuch'" in capsys.readouterr().err


def test_train_lists_the_shared_and_the_system_flags(capsys):
    # Every system takes the shared flags; each adds its own.
    for system, own in (("ifan", "--iter"), ("uniface", "--variants"), ("mtfr", "--steps")):
        assert main(["train", system, "--help"]) == 0
        out = capsys.readouterr().out
        for flag in ("--experiment", "--model-dir", "--resume", "--deterministic", "--strategy", "--data",
                     "--cache-dir", "--preset", "--seed", own):
            assert flag in out, (system, flag)
    assert main(["train", "ifan", "--", "--help"]) == 0


def test_train_finds_the_system_from_the_experiment_name(capsys):
    from keras_facemt.training.train_command import find_system_of_experiment

    assert find_system_of_experiment("uniface_smoke").name == "uniface"
    assert find_system_of_experiment("ifan_3t").name == "ifan"
    assert main(["train", "--experiment", "nosuch_experiment"]) == 2
    err = capsys.readouterr().err
    assert "Unknown experiment 'nosuch_experiment'" in err and "mtfr_smoke" in err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2


def test_ablation_variant_lists_are_checked_by_name():
    from keras_facemt.errors import ConfigError
    from keras_facemt.training.runner import selected_variants

    assert selected_variants(None, ("a", "b")) is None and selected_variants("", ("a", "b")) is None
    assert selected_variants("b, a", ("a", "b")) == ["b", "a"]
    with pytest.raises(ConfigError, match=r"Unknown variant 'c'; variants: \['a', 'b'\]. Received: --variants=a,c"):
        selected_variants("a,c", ("b", "a"))
