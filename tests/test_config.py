"""The typed config: defaults, TOML round trip, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from intentune import Config, ConfigError, load_config, render_config, save_config


def test_rendered_defaults_load_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(render_config())
    assert load_config(path) == Config()


def test_every_key_is_written_with_a_comment() -> None:
    text = render_config()
    for key in ("train_file", "backbone", "learning_rate", "early_stopping_patience", "max_length"):
        assert f"{key} = " in text
    assert "# learning_rate = " in text  # unset values are shown commented out
    assert text.count("\n# ") >= 25


def test_saved_config_round_trips_changed_values(tmp_path: Path) -> None:
    config = Config().override(["train.learning_rate=3e-5", "model.backbone=minilm-l6", "data.lowercase=true"])
    save_config(config, tmp_path / "c.toml")
    again = load_config(tmp_path / "c.toml")
    assert again == config
    assert again.train.learning_rate == 3e-5 and again.model.backbone == "minilm-l6" and again.data.lowercase is True


def test_override_parses_types() -> None:
    config = Config().override(["train.epochs=3", "train.head_learning_rate=1", "data.train_file=data/x y.csv"])
    assert config.train.epochs == 3
    assert config.train.head_learning_rate == 1.0 and isinstance(config.train.head_learning_rate, float)
    assert config.data.train_file == "data/x y.csv"
    assert Config().override(["train.learning_rate=none"]).train.learning_rate is None


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.learning_rat=1e-5", r"unknown key train.learning_rat; keys of \[train\] are seed, epochs"),
        ("training.epochs=3", "unknown config section 'training'; sections are data, model, train, generate"),
        ("train.epochs=three", "train.epochs must be int, found 'three'"),
        ("train.epochs", "expected section.key=value"),
        ("train.schedule=step", "train.schedule must be one of linear, cosine, constant, found 'step'"),
        ("train.epochs=0", "train.epochs must be at least 1"),
        ("model.kind=seq2seq", "model.kind must be one of auto, decoder, encoder"),
    ],
)
def test_bad_overrides_name_the_key(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config().override([assignment])


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[model]\nbackbon = 'x'\n")
    with pytest.raises(ConfigError, match=r"c.toml: unknown key model.backbon"):
        load_config(path)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found; write one with `intentune config init"):
        load_config(tmp_path / "none.toml")


def test_fractions_must_leave_sixty_percent_for_training() -> None:
    with pytest.raises(ConfigError, match="must leave at least 60% for training"):
        Config().override(["data.validation_fraction=0.25", "data.test_fraction=0.2"])


def test_example_config_is_complete_and_current() -> None:
    path = Path(__file__).resolve().parents[1] / "configs" / "default.toml"
    assert load_config(path) == Config()
    assert path.read_text() == render_config(), "regenerate with: intentune config init configs/default.toml --force"


def test_public_api_is_lazy_and_complete() -> None:
    import subprocess
    import sys

    import intentune

    for name in intentune.__all__:
        assert getattr(intentune, name) is not None, name
    code = "import sys, intentune, intentune.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", "importing the package or the CLI must not import torch"


def test_build_config_applies_file_then_set_then_options(tmp_path: Path) -> None:
    from intentune.config_files import build_config

    path = tmp_path / "c.toml"
    path.write_text("[data]\ntest_fraction = 0.15\nsplit_seed = 7\n\n[model]\nbackbone = 'minilm-l6'\n")
    config = build_config(
        path, ["data.split_seed=8", "model.max_length=32"], {"data.split_seed": 9, "model.backbone": None}
    )
    assert (config.data.test_fraction, config.data.split_seed, config.model.max_length) == (0.15, 9, 32)
    assert config.model.backbone == "minilm-l6"  # an option not given (None) leaves the key alone
    assert build_config(options={"data.train_file": tmp_path / "t.csv"}).data.train_file == str(tmp_path / "t.csv")
    # Checked once, at the end: 0.25 + 0.2 is too much, 0.25 + 0.1 is not.
    assert build_config(None, ["data.test_fraction=0.2", "data.validation_fraction=0.25"], {"data.test_fraction": 0.1})
    with pytest.raises(ConfigError, match="option: data.split_seed must be int, found 'x'"):
        build_config(options={"data.split_seed": "x"})


def test_build_config_reads_the_environment_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from intentune.config_files import build_config

    monkeypatch.setenv("INTENTUNE_PORT", "9001")
    assert build_config().serve.port == 8000
    assert build_config(env=True).serve.port == 9001
    assert build_config(None, ["serve.port=9002"], env=True).serve.port == 9002
    assert build_config(None, ["serve.port=9002"], {"serve.port": 9003}, env=True).serve.port == 9003
