"""Checkpoints and their JSON layout of optimizer state (siamese.formats.checkpoint, optstate),
fuzzed: the file's bytes, and (rewritten as a sound .npz) its meta JSON and its arrays. Reading
one and restoring it into the built model and optimizer either works or is a UserError naming
the file; a checkpoint is never unpickled."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import MISSING, fields
from pathlib import Path

import mxnet as mx
import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from siamese.config import load_config
from siamese.formats import checkpoint
from siamese.train.engine import build_blocks
from siamese.train.resume import plan_resume
from siamese.train.state import State
from tests.fuzz.harness import (
    ERROR,
    Sandbox,
    budget,
    contract,
    dumps,
    mutate_json,
    mutations,
    write,
)

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "rooms" / "run"
VALID = (RUN / "checkpoints" / "last.ckpt").read_bytes()
with np.load(io.BytesIO(VALID), allow_pickle=False) as _z:
    ARRAYS = {k: _z[k] for k in _z.files}
META = json.loads(ARRAYS["meta"].tobytes().decode())
_PARTS: dict = {}


def _parts():
    """The fixture run's model and an Adam trainer, built once."""
    if not _PARTS:
        cfg = load_config(RUN / "config.yaml", [f"data.root={RUN.parent / 'images'}"])
        net, loss, _ = build_blocks(cfg, [mx.cpu()], classes=META["classes"])
        blocks = {"model": net, "loss": loss}
        params = [p for b in blocks.values() for p in b.collect_params().values()]
        trainer = mx.gluon.Trainer(params, "adam", {"learning_rate": 0.001})
        _PARTS.update(blocks=blocks, trainer=trainer)
    return _PARTS["blocks"], _PARTS["trainer"]


def _restore(path: Path):
    """What `train.py --resume` does with it: plan the resume, restore into the model."""
    cfg, run, (found, meta) = plan_resume(path.parent.parent, None, [])
    assert found == path and cfg.train.epochs >= 1
    blocks, trainer = _parts()
    checkpoint.restore(path, blocks, trainer)
    state = State(**meta["state"])  # what fit.start makes of it: the loop's own types
    for f in fields(State):
        want = type(f.default) if f.default is not MISSING else dict
        assert isinstance(getattr(state, f.name), (int, float) if want is float else want), f
    assert state.epoch == meta["epoch"] and state.batch == meta.get("batch", 0)
    return meta


def _run(box: Sandbox, data: bytes) -> Path:
    """A run directory in the sandbox: the fixture's config, `data` as its only checkpoint."""
    config = (RUN / "config.yaml").read_text().replace("root: images", f"root: {RUN.parent}/images")
    write(box.root / "run" / "config.yaml", config.encode())
    return write(box.root / "run" / "checkpoints" / "last.ckpt", data)


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@st.composite
def rewritten(draw) -> bytes:
    """A sound .npz whose meta JSON or arrays are edited: keys dropped or added, dtypes and
    shapes changed, the optimizer layout made to point anywhere."""
    arrays = dict(ARRAYS)
    if draw(st.booleans()):
        with contextlib.suppress(ValueError):  # a document json cannot write
            arrays["meta"] = np.frombuffer(dumps(draw(mutate_json(META))), np.uint8)
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.sampled_from(sorted(arrays)))
        op = draw(st.sampled_from(["drop", "dtype", "shape", "nan", "object", "rename"]))
        if op == "drop":
            del arrays[k]
        elif op == "dtype":
            with contextlib.suppress(ValueError, TypeError):  # not every array converts
                arrays[k] = arrays[k].astype(draw(st.sampled_from(["float64", "int8", "U3",
                                                                   "bool"])))
        elif op == "shape":
            arrays[k] = arrays[k].reshape(-1)[: draw(st.integers(0, 3))]
        elif op == "nan":
            arrays[k] = np.full(arrays[k].shape, np.nan, np.float32)
        elif op == "object":
            arrays[k] = np.array([{"a": 1}], dtype=object)
        else:
            arrays[draw(st.sampled_from(["opt/99/0", "param/x", "optimizer_states"]))] = \
                arrays.pop(k)
    try:
        return _npz(arrays)
    except ValueError:  # numpy refuses to write it: write the valid file instead
        return VALID


def _with(meta=None, **arrays) -> bytes:
    out = dict(ARRAYS, **arrays)
    if meta is not None:
        out["meta"] = np.frombuffer(dumps(meta), np.uint8)
    return _npz(out)


FOUND = [  # found by fuzzing: each failed deep in restore (or would at the first step)
    _with({k: v for k, v in META.items() if k != "optimizer"}),
    _with(dict(META, optimizer=dict(META["optimizer"], counts={"0": None}))),
    _with(dict(META, state=dict(META["state"], epoch="2"))),
    _with(dict(META, state=dict(META["state"], epoch=0))),
    _with(**{"param/model.branch.features.0.weight":
             ARRAYS["param/model.branch.features.0.weight"].astype("U3")}),
    _with(**{"opt/0/0": np.zeros(3, np.float32)}),
]


@budget(40)
@given(mutations(VALID, separators=b""))
def test_a_checkpoint_with_damaged_bytes(data):
    with Sandbox() as box:
        path = _run(box, data)
        contract("checkpoints", lambda: _restore(path), box, names=[path],
                 writable=[box.root])


@budget(80)
@given(rewritten())
@example(_npz({**ARRAYS, "optimizer_states": np.frombuffer(b"cos\nsystem\n(S'echo hi'\ntR.",
                                                           np.uint8)}))
def test_a_checkpoint_with_edited_meta_or_arrays(data):
    with Sandbox() as box:
        path = _run(box, data)
        contract("checkpoints", lambda: _restore(path), box, names=[path],
                 writable=[box.root])


def test_checkpoints_found_by_fuzzing_are_refused_naming_the_file():
    for data in FOUND:
        with Sandbox() as box:
            path = _run(box, data)
            assert contract("checkpoints", lambda p=path: _restore(p), box, names=[path],
                            writable=[box.root]) is ERROR
