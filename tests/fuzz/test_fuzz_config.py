"""YAML configs and `--set` overrides (siamese.config), fuzzed."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from siamese.config import load_config, to_dict
from siamese.config.load import from_dict
from tests.fuzz.harness import ERROR, SPECIAL, Sandbox, budget, contract, mutations, write

ROOT = Path(__file__).resolve().parents[2]
VALID = (ROOT / "configs" / "pairs.yaml").read_bytes()


def _flat(d: dict, prefix: str = "") -> list:
    out = []
    for k, v in d.items():
        out += _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return out


KEYS = _flat(to_dict(from_dict({})))


def _config(sandbox: Sandbox, data: bytes) -> Path:
    """The mutated config, its data.root pointed at the sandbox's (existing) root."""
    text = data.replace(b"data/digits", str(sandbox.root).encode())
    return write(sandbox.root / "c.yaml", text)


def _read(path: Path, overrides=()):
    cfg = load_config(path, list(overrides))
    # A config that loads is whole: it writes back to YAML and reads back to itself.
    again = path.with_name("again.yaml")
    again.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_config(again) == cfg
    return cfg


@budget(60)
@given(mutations(VALID, separators=b": "))
@example(b"data:\n  root: data/digits\n  image_size: .nan\n")
@example(b"a: &a [*a, *a]\n")
@example(b"train:\n  epochs: " + b"9" * 5000 + b"\n")  # found by fuzzing (int() limit)
@example(b"train: " + b"[" * 5000 + b"\n")
@example(b"data:\n  root: " + b"a" * 5000 + b"\n")  # found by fuzzing: name too long
def test_a_mutated_config_loads_or_is_refused_naming_the_file(data):
    with Sandbox() as box:
        path = _config(box, data)
        contract("config", lambda: _read(path), box, names=[path], writable=[box.root],
                 note=repr(data[:200]))


@budget(60)
@example("train.epochs", "9" * 5000)  # found by fuzzing (int() limit)
@example("data.val_fraction", "NaN")  # found by fuzzing: accepted
@example("data.root", "\x00")  # found by fuzzing: ValueError (embedded null byte)
@example("0\n0", "")  # found by fuzzing: a key with a line break made a two-line message
@given(st.sampled_from(KEYS) | st.text(max_size=20),
       st.sampled_from(SPECIAL) | st.text(max_size=20) | st.integers().map(str))
def test_a_set_override_applies_or_is_refused_naming_the_key(key, value):
    with Sandbox() as box:
        path = _config(box, VALID)
        item = f"{key}={value}"
        result = contract("config", lambda: _read(path, [item]), box,
                          names=["--set", key.strip()], writable=[box.root], note=repr(item))
        if result is not ERROR and key in KEYS and key != "data.root":
            assert result == _read(path, [f"{key}={value}"])


def test_equivalent_spellings_give_the_clean_result():
    with Sandbox() as box:
        clean = _read(_config(box, VALID))
        for same in (VALID.replace(b"\n", b"\r\n"), VALID + b"\n\n# end\n", b"---\n" + VALID):
            assert _read(_config(box, same)) == clean
