"""The classification command line: one parent parser for train and validate, timm's option meanings,
recipes as YAML files read with -c/--config, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from parcnetv2.classification import args

RECIPE = args.CONFIG_DIR / "imagenet_parcnetv2_tiny.yaml"
BUILTIN = args.CONFIG_DIR / "builtin.yaml"
PUBLISHED = [
    "--model", "parcnetv2_tiny", "--opt", "adamw", "--lr", "4e-3", "--warmup-epochs", "20",
    "-b", "128", "--grad-accum-steps", "4", "--drop-path", "0.2", "--head-dropout", "0.0",
]  # fmt: skip


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


def test_train_and_validate_share_one_definition_of_the_common_options() -> None:
    common, train, validate = (
        _options(p()) for p in (args.common_parser, args.train_parser, args.validate_parser)
    )
    assert len(common) >= 13
    for dest, action in common.items():
        for parser in (train, validate):
            assert parser[dest].option_strings == action.option_strings, dest
            if dest != "model_kwargs":  # validate: None = the checkpoint's
                assert parser[dest].default == action.default, dest
    assert train["amp_dtype"].default == validate["amp_dtype"].default == "float16"  # timm's


def test_defaults_are_timms_neutral_ones_and_the_recipe_file_is_the_published_recipe() -> None:
    neutral = args.parse_train_args(["/data/imagenet", "--model", "parcnetv2_tiny"])
    assert (neutral.opt, neutral.lr, neutral.lr_base, neutral.weight_decay, neutral.warmup_epochs) == (
        "sgd", None, 0.1, 2e-5, 5,
    )  # fmt: skip
    assert (neutral.aa, neutral.mixup, neutral.cutmix, neutral.reprob, neutral.drop_path) == (
        "",
        0,
        0,
        0,
        None,
    )
    assert args.resolve_input_size(neutral) is None and neutral.workers == 4, (
        "the model's size, timm's workers"
    )
    recipe = args.parse_train_args(["/data/imagenet", "-c", str(RECIPE)])
    assert (recipe.model, recipe.epochs, recipe.lr, recipe.warmup_epochs, recipe.batch_size) == (
        "parcnetv2_tiny", 300, 4e-3, 20, 128,
    )  # fmt: skip
    assert (recipe.min_lr, recipe.warmup_lr, recipe.weight_decay, recipe.opt, recipe.sched) == (
        1e-5, 1e-6, 0.05, "adamw", "cosine",
    )  # fmt: skip
    assert (recipe.aa, recipe.mixup, recipe.cutmix, recipe.smoothing, recipe.reprob, recipe.remode) == (
        "rand-m9-mstd0.5-inc1", 0.8, 1.0, 0.1, 0.25, "pixel",
    )  # fmt: skip
    assert args.resolve_input_size(recipe) == [3, 224, 224] and recipe.drop_path == 0.2
    assert (recipe.train_interpolation, recipe.seed, recipe.scale, recipe.workers) == (
        "random",
        42,
        [0.08, 1.0],
        8,
    )
    assert not recipe.amp and not recipe.model_ema and recipe.clip_grad is None
    flags = args.parse_train_args(["/data/imagenet", "-c", str(RECIPE), *PUBLISHED])
    assert vars(flags) == vars(recipe) | {"grad_accum_steps": 4}, "the README's flags repeat the recipe"


def test_the_builtin_recipe_and_flags_over_it() -> None:
    builtin = args.parse_train_args(["-c", str(BUILTIN)])
    assert builtin.builtin_data and builtin.model == "parcnetv2_xt" and builtin.img_size == 32
    assert (builtin.aa, builtin.mixup, builtin.cutmix, builtin.reprob, builtin.drop_path) == ("", 0, 0, 0, 0)
    assert builtin.validation_batch_size == builtin.batch_size == 32
    assert (builtin.opt, builtin.lr, builtin.epochs, builtin.weight_decay, builtin.min_lr) == (
        "adamw", 1e-3, 6, 0.05, 1e-5,
    )  # fmt: skip
    over = args.parse_train_args(["-c", str(BUILTIN), "--lr", "5e-4", "--img-size", "48", "--data-dir", "d"])
    assert (over.lr, args.resolve_input_size(over), over.epochs, over.builtin_data) == (
        5e-4, [3, 48, 48], 6, False,
    )  # fmt: skip
    assert yaml.safe_load(BUILTIN.read_text()).keys() <= _options(args.train_parser()).keys()


def test_timm_sizes() -> None:
    v = args.parse_validate_args(["d/val", "--checkpoint", "c", "--input-size", "3", "64", "48"])
    assert args.resolve_input_size(v) == [3, 64, 48] and v.model_kwargs is None
    v = args.parse_validate_args(
        ["d", "--checkpoint", "c", "--img-size", "64", "--input-size", "3", "40", "40"]
    )
    assert args.resolve_input_size(v) == [3, 40, 40], "--input-size wins, as in timm"
    v = args.parse_validate_args(["d", "--checkpoint", "c", "--eval-sizes", "160", "224"])
    assert v.eval_sizes == [160, 224] and args.resolve_input_size(v) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["imagenet", "-c", str(RECIPE), "-b", "7"], "must be even"),  # the recipe mixes up pairs
        (["d", "--model", "m", "--preempt-signals", "SIGNOPE"], "no signal a process can catch"),
        (["d", "--model", "m", "--preempt-signals", "SIGTERM", "SIGKILL"], "'SIGKILL' is no signal"),
        (["d", "--model", "m", "--recovery-interval", "-1"], "--recovery-interval"),
        (["d", "--model", "m", "--grad-accum-steps", "0"], "grad-accum-steps"),
        (["d", "--model", "m", "--lr", "0"], "--lr"),
        (["d", "--model", "m", "--drop-path", "1.5"], "drop-path"),
        (["a", "--data-dir", "b"], "disagree"),
        (["d", "--input-size", "64"], "expected 3 arguments"),
        (["d", "--model", "m", "--num-classes", "0"], "--num-classes"),
        ([], "no DATA_PATH"),
        (["d", "-c", "nowhere.yaml"], "cannot read nowhere.yaml"),
    ],
)
def test_bad_train_options_are_rejected(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        args.parse_train_args(argv)
    assert message in capsys.readouterr().err


def test_bad_recipe_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for text, message in (
        ("lr: 1\nlearning_rate: 2\n", "unknown option(s) ['learning_rate']"),
        ("- 1\n", "mapping"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SystemExit):
            args.parse_train_args(["d", "-c", str(bad)])
        assert message in capsys.readouterr().err


def test_validate_errors_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PARCNETV2_DEBUG", None)
    cmd = [sys.executable, "-m", "parcnetv2.classification.validate", str(tmp_path / "nowhere" / "val")]
    proc = subprocess.run(
        [*cmd, "--checkpoint", str(tmp_path / "c.pth")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("parcnetv2.classification.validate: error: ")
