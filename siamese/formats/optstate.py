"""Optimizer state as named arrays and plain JSON, never pickled.

MXNet keeps an optimizer's per-parameter state (Adam's mean and variance, SGD's momentum) in
`Updater.states`: {parameter index: None | NDArray | tuple/list of those}. Its own
`get_states()` pickles that dict, and `set_states()` unpickles whatever bytes it is given, so
a checkpoint someone else prepared could run code on resume. Here the state is written as
arrays `opt/<index>/<k>` with a JSON layout, and read back without any unpickler.

Checkpoints written before this format hold the pickled bytes (`optimizer_states`). They are
read through `legacy_states`, an unpickler that admits only the two classes those bytes are
made of (MXNet's NDArray and the bytearray it restores from) and refuses anything else.
"""

from __future__ import annotations

import io
import pickle
from typing import Dict, Tuple

import mxnet as mx
import numpy as np

from ..errors import UserError

PREFIX = "opt/"
# What MXNet's pickled optimizer states are made of, and nothing more.
ALLOWED = {("mxnet.ndarray.ndarray", "NDArray"), ("builtins", "bytearray")}


def flatten(states: dict) -> Tuple[dict, Dict[str, np.ndarray]]:
    """(layout, arrays) of Updater.states: layout {index: tree} is JSON, where a tree is
    null, {"array": key} or {"seq": "tuple" | "list", "items": [trees]}."""
    arrays: Dict[str, np.ndarray] = {}

    def tree(index, state) -> object:
        if state is None:
            return None
        if isinstance(state, mx.nd.NDArray):
            key = f"{PREFIX}{index}/{len(arrays)}"
            arrays[key] = state.asnumpy()
            return {"array": key}
        if isinstance(state, (tuple, list)):
            return {"seq": type(state).__name__, "items": [tree(index, s) for s in state]}
        raise TypeError(f"optimizer state of type {type(state).__name__} cannot be saved")

    layout = {str(i): tree(i, s) for i, s in states.items()}
    return layout, arrays


def unflatten(layout: dict, arrays: Dict[str, np.ndarray], where: str) -> dict:
    """Updater.states from a layout and its arrays (fresh NDArrays on the CPU; MXNet moves
    them to each parameter's device on the first update)."""

    def state(tree):
        if tree is None:
            return None
        if not isinstance(tree, dict):
            raise UserError(f"{where}: optimizer state layout is damaged")
        if "array" in tree:
            if tree["array"] not in arrays:
                raise UserError(f"{where}: optimizer state {tree['array']} is missing")
            a = arrays[tree["array"]]
            if a.dtype.kind not in "fiu" or a.dtype.itemsize > 8:  # text, bool, complex...
                raise UserError(f"{where}: optimizer state {tree['array']} is {a.dtype}")
            return mx.nd.array(a, dtype=a.dtype)
        items = [state(t) for t in tree.get("items", ())]
        return tuple(items) if tree.get("seq") == "tuple" else items

    try:
        return {int(i): state(t) for i, t in layout.items()}
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise UserError(f"{where}: optimizer state layout is damaged") from None


class _OnlyOptimizerStates(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def legacy_states(data: bytes, where: str) -> dict:
    """Updater.states from the pickled bytes of a checkpoint written before this format.

    Raises:
        UserError: the bytes name anything but MXNet NDArrays (a payload), naming the file.
    """
    try:
        states = _OnlyOptimizerStates(io.BytesIO(data)).load()
    except Exception as e:  # any failure of untrusted bytes is the file's fault
        raise UserError(f"{where}: refused its optimizer state ({e}); only MXNet arrays are "
                        f"accepted in a checkpoint") from None
    if not isinstance(states, dict) or not all(isinstance(k, int) for k in states):
        raise UserError(f"{where}: optimizer state is not a map of parameter indices")
    return states
