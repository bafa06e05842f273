"""Config loading, validation and overrides; CLI errors exit 2 naming file and key path."""

from __future__ import annotations

import pytest
from conftest import ROOT

import train
from siamese.config import Config, load_config, to_yaml
from siamese.errors import UserError

DEFAULT = ROOT / "configs" / "pairs.yaml"


def test_default_config_loads_and_overrides_apply():
    cfg = load_config(DEFAULT, ["train.epochs=3", "data.image_size=40", "model.forward_mode=twice",
                                "train.lr=1e-3"])
    assert cfg.train.lr == 0.001  # YAML 1.1 would read 1e-3 as a string
    assert cfg.train.epochs == 3
    assert cfg.data.image_size == [40, 40]
    assert cfg.model.forward_mode == "twice"


def test_every_field_has_help_in_the_written_yaml(tmp_path):
    text = to_yaml(Config())
    keys = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) == len(keys)
    # The written YAML loads back to the same config.
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("data/digits", str(ROOT / "data" / "digits")))
    assert to_yaml(load_config(path)) == path.read_text()


@pytest.mark.parametrize("text, message", [
    ("train:\n  lr: fast\n", "bad.yaml: train.lr: expected a positive number, got 'fast'"),
    ("train:\n  lrr: 0.1\n", "bad.yaml: train.lrr: unknown key"),
    ("model:\n  forward_mode: thrice\n", "bad.yaml: model.forward_mode: expected one of"),
    ("data:\n  root: /nonexistent/folder\n", "data.root: no such folder"),
    ("train: [1, 2\n", "bad.yaml: line"),
])
def test_bad_config_exits_2_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert train.main([str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("train.epochs=many", "train.epochs: expected a positive integer, got 'many'"),
    ("train.batchsize=3", "train.batchsize: unknown key"),
    ("nonsense", "expected key.path=value"),
    ("data.channels=2", "data.channels: expected one of 1, 3"),
])
def test_bad_set_exits_2_naming_key(tmp_path, capsys, override, message):
    assert train.main([str(DEFAULT), "--set", override, "--run-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_cross_field_rules():
    with pytest.raises(UserError, match="data.std"):
        load_config(DEFAULT, ["data.channels=3", "data.std=[0.5, 0.5]"])
    with pytest.raises(UserError, match="below 1"):
        load_config(DEFAULT, ["data.val_fraction=0.5", "data.test_fraction=0.5"])


def test_readme_lists_every_config_key():
    import dataclasses
    from pathlib import Path

    from siamese.config import Config

    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()

    def keys(cls, prefix=""):
        for f in dataclasses.fields(cls):
            tp = cls.__dataclass_fields__[f.name].default_factory \
                if f.default_factory is not dataclasses.MISSING else None
            if tp is not None and dataclasses.is_dataclass(tp):
                yield from keys(tp, f"{f.name}.")
            else:
                yield prefix + f.name

    missing = [k for k in keys(Config) if f"`{k}`" not in text]
    assert not missing, missing


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_points_at_shipped_data(path):
    cfg = load_config(path)
    assert (ROOT / cfg.data.root).is_dir(), cfg.data.root
