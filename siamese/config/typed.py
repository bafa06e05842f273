"""Typed dataclass configs: fields with help and checks, loading from plain mappings with
errors naming the key path, `key.path=value` overrides, YAML reading and writing.

Generic machinery only; the project's schema and its cross-field rules are in siamese.config.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, List, Literal

import yaml

from ..errors import UserError


def typed_field(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with a help line and value checks (min, max, positive, length)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})

# ---------------------------------------------------------------------------------- validation


def _describe(tp: Any, meta: dict) -> str:
    """Words for what a field expects, used in error messages."""
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    positive = meta.get("positive") or (meta.get("min") is not None and meta["min"] > 0)
    if typing.get_origin(tp) in (list, List):
        inner = _describe(typing.get_args(tp)[0], meta).split(" ", 1)[1]
        n = meta.get("length")
        return f"a list of {n} {inner}s" if n else f"a list of {inner}s"
    names = {int: "integer", float: "number", str: "string", bool: "true or false"}
    word = names.get(tp, str(tp))
    return f"a positive {word}" if positive and tp in (int, float) else f"a {word}"


def _coerce(tp: Any, value: Any, meta: dict, key: str) -> Any:
    """Check `value` against type `tp` and the field's checks; return the normalised value."""
    bad = UserError(f"{key}: expected {_describe(tp, meta)}, got {value!r}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise bad
        return value
    if origin in (list, List):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and meta.get("length"):
            value = [value] * meta["length"]  # image_size: 32 means [32, 32]
        if not isinstance(value, list) or (meta.get("length") and len(value) != meta["length"]):
            raise bad
        inner = typing.get_args(tp)[0]
        return [_coerce(inner, v, meta, key) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
        if value != value:  # NaN (found by fuzzing: data.val_fraction=NaN was accepted)
            raise bad
    elif tp is str:
        if value is True and meta.get("no_true"):
            raise UserError(meta["no_true"])
        if value is False and meta.get("no_true"):
            return ""
        if not isinstance(value, str) or (not value and "no_true" not in meta):
            raise bad
        return value
    if meta.get("positive") and not value > 0:
        raise bad
    if meta.get("min") is not None and value < meta["min"]:
        raise UserError(f"{key}: must be at least {meta['min']}, got {value!r}")
    if meta.get("max") is not None and value > meta["max"]:
        raise UserError(f"{key}: must be at most {meta['max']}, got {value!r}")
    return value


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Make dataclass `cls` from a mapping, rejecting unknown keys and bad values."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{prefix.rstrip('.') or 'top level'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        valid = ", ".join(fields)
        raise UserError(f"{prefix}{unknown[0]}: unknown key (valid here: {valid})")
    values = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = build(tp, value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(tp, value, dict(fields[name].metadata), prefix + name)
    return cls(**values)

def set_path(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise UserError(f"{dotted}: {k} is not a section")
        node = child
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: List[str]) -> dict:
    """Apply `key.path=value` strings to a raw mapping; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise UserError(f"--set {item}: expected key.path=value")
        key, text = (s.strip() for s in item.split("=", 1))
        try:
            value = yaml.safe_load(text) if text else ""
        except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an int of > 4300
            value = text  # digits (found by fuzzing); then refused by the key's type
        set_path(raw, key, value)
    return raw


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping; errors name the file (and the line for syntax errors)."""
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}: {where}invalid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    except (ValueError, RecursionError) as e:  # found by fuzzing: an integer of more than
        # 4300 digits (Python's int() limit) or nesting deeper than the recursion limit
        raise UserError(f"{path}: invalid YAML ({str(e)[:100] or type(e).__name__})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return raw

def to_yaml(cfg: Any, indent: str = "") -> str:
    """The config as YAML with each field's help as a comment above it."""
    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        help_text = f.metadata.get("help")
        if help_text:
            lines.append(f"{indent}# {help_text}")
        if dataclasses.is_dataclass(value):
            lines.append(f"{indent}{f.name}:")
            lines.append(to_yaml(value, indent + "  ").rstrip("\n"))
        else:
            text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
            text = text.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{indent}{f.name}: {text}")
    return "\n".join(lines) + "\n"
