"""The fuzzing contract, shared by every reader's properties (tests/fuzz/test_fuzz_*.py) and by
scripts/fuzz.py.

Each example calls a reader on generated input inside `contract(...)`, which asserts:
- it returns (the caller then compares with the clean parse), or raises the project's own
  UserError whose message is one line naming the file (and the line or key, where the reader
  has one); any other exception fails the example;
- it ends within HARD_SECONDS (an interval timer raises Hang inside the reader: never a hang);
- it opens nothing under the sandbox's `secret/` folder (never reading outside the root it was
  given) and writes, renames or removes nothing outside the folders the caller allows (an audit
  hook sees every open, rename and remove made from Python while the reader runs).

Inputs are the valid format, mutated: `mutations(valid)` draws a list of edits (cut short,
bytes flipped, spans deleted or inserted, lines dropped, repeated, swapped or made very long,
fields replaced by wrong types, huge numbers, NaN, empty, paths leaving the root, other
encodings) and `mutate_json` edits a parsed JSON document node by node.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from siamese.errors import UserError

LONG = os.environ.get("SIAMESE_FUZZ_LONG") == "1"  # set by scripts/fuzz.py
# The hard limit per example, wall clock; the long run is niced on a shared machine, so its
# examples may wait for the CPU: it relies on this limit alone (no Hypothesis deadline).
HARD_SECONDS = 60.0 if LONG else 20.0
_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]
settings.register_profile("ci", derandomize=True, database=None, deadline=10_000,
                          suppress_health_check=_CHECKS, print_blob=False)
settings.register_profile("long", derandomize=False, database=None, deadline=None,
                          suppress_health_check=_CHECKS, report_multiple_bugs=False)
# The suite's fixed budget: seeded (derandomize), no example database, a deadline per example
# besides the hard limit. scripts/fuzz.py runs the same properties under "long".
settings.load_profile("long" if LONG else "ci")


def budget(n: int) -> settings:
    """The settings of a property: `n` examples in the suite (its fixed budget), many per call
    under scripts/fuzz.py (which calls each property again and again with new seeds)."""
    return settings(max_examples=int(os.environ.get("SIAMESE_FUZZ_EXAMPLES", 200)) if LONG
                    else n)
ERROR = object()  # what contract() returns for a UserError that kept the contract
STATS: dict = {}  # reader -> {"examples", "errors", "slowest": (seconds, note)}

SPECIAL = ["", " ", "0", "-1", "1", "2", "NaN", "nan", "inf", "-inf", "1e309", "-0",
           "99999999999999999999999", "18446744073709551617", "3.5", "true", "null", "[]", "{}",
           "[1, 2]", "é", "\u202e", "\x00", "\ufeff", '"', "'", ",", "\t", ":", "- a", "{{",
           "!!python/object/apply:os.system ['echo hi']", "*a", "&a b", "%YAML 9.9",
           "../secret/x.png", "../../secret/x.png", "a/../../secret/x.png", "SECRET",
           "class0/../../secret/x.png", "~", "/dev/zero", "x" * 5000]


class Hang(BaseException):
    """Raised by the interval timer inside a reader that ran past HARD_SECONDS (a BaseException,
    so no `except Exception` in the reader can swallow it)."""


_WATCH: dict = {"on": False, "secret": "", "writable": (), "seen": []}
_WRITE_EVENTS = ("os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "os.mkdir",
                 "shutil.rmtree", "shutil.move", "os.truncate", "os.symlink", "os.link")


def _audit(event: str, args: tuple) -> None:
    if not _WATCH["on"] or not (event == "open" or event in _WRITE_EVENTS):
        return
    path = args[0] if args else None
    if isinstance(path, int) or path is None:
        return
    try:
        path = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    writes = event != "open"
    if event == "open":
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            bool(isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    _WATCH["seen"].append((event, path, writes))


sys.addaudithook(_audit)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise Hang in this (main) thread after `seconds`."""
    def ring(signum, frame):
        raise Hang(f"still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 200).save(buf, "PNG")
    return buf.getvalue()


_SECRET_PNG = _png()
# Sandboxes in memory when the machine has a tmpfs (3x faster to make and remove than on disk)
_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def png(value: int = 0) -> bytes:
    """A small grey PNG's bytes (made once per value): cheaper than Pillow per example."""
    if value not in _PNGS:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("L", (8, 8), value).save(buf, "PNG")
        _PNGS[value] = buf.getvalue()
    return _PNGS[value]


_PNGS: dict = {}


class Sandbox:
    """A temporary folder with `root/` (what the reader is given) and `secret/` (what it must
    never read: generated paths and symlinks point there)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="siamese-fuzz-", dir=_TMP))
        self.root = self.dir / "root"
        self.secret = self.dir / "secret"
        self.root.mkdir()
        self.secret.mkdir()
        (self.secret / "x.png").write_bytes(_SECRET_PNG)
        (self.secret / "notes.txt").write_text("secret\n")

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _under(path: str, folders: Iterable) -> bool:
    return any(path == str(f) or path.startswith(str(f).rstrip("/") + "/") for f in folders)


def contract(reader: str, fn: Callable[[], object], sandbox: Sandbox,
             names: Iterable[str] = (), writable: Iterable = (), note: str = ""):
    """Run `fn` (a reader on generated input) under the contract; its result, or ERROR.

    Args:
        reader: the reader family, for the statistics.
        names: the message of a UserError must contain one of these (the file's path or name,
            the flag or key it came from); empty: only one line is asked.
        writable: folders the reader may write in (nothing else).
    """
    stats = STATS.setdefault(reader, {"examples": 0, "errors": 0, "slowest": (0.0, "")})
    stats["examples"] += 1
    _WATCH.update(on=True, seen=[])
    t0 = time.perf_counter()
    try:
        with time_limit(HARD_SECONDS):
            result = fn()
    except UserError as e:
        message = str(e)
        assert len(message.splitlines()) == 1, f"UserError of more than one line: {message!r}"
        names = [str(n) for n in names]
        assert not names or any(n in message for n in names), \
            f"UserError naming none of {names}: {message!r}"
        stats["errors"] += 1
        result = ERROR
    finally:
        _WATCH["on"] = False
        seconds = time.perf_counter() - t0
        if seconds > stats["slowest"][0]:
            stats["slowest"] = (seconds, note[:200])
    allowed = [str(Path(w).resolve()) for w in writable] + [str(Path(w)) for w in writable]
    for event, path, writes in _WATCH["seen"]:
        assert not _under(path, [sandbox.secret, sandbox.secret.resolve()]), \
            f"read outside the root: {event} {path}"
        if writes and "__pycache__" not in path:
            assert _under(path, allowed), f"wrote outside the allowed folders: {event} {path}"
    return result


# ---- mutations --------------------------------------------------------------------------

@st.composite
def mutations(draw, valid: bytes, separators: bytes = b",\t ") -> bytes:
    """`valid` with 1-3 random edits (see the module docstring)."""
    data = valid
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(_EDITS))(draw, data, separators)
    return data


def _pos(draw, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def _truncate(draw, data, seps):
    return data[:_pos(draw, data)]


def _flip(draw, data, seps):
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]


def _insert(draw, data, seps):
    i = _pos(draw, data)
    return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]


def _delete(draw, data, seps):
    i = _pos(draw, data)
    return data[:i] + data[i + draw(st.integers(1, 64)):]


def _lines(draw, data, seps):
    lines = data.split(b"\n")
    i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
    op = draw(st.sampled_from(["drop", "repeat", "swap", "long", "special", "crlf", "blank"]))
    if op == "drop":
        del lines[i]
    elif op == "repeat":
        lines.insert(i, lines[i])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "long":
        lines[i] = lines[i] + draw(st.sampled_from([b"a", b",", b"[", b" ", b"9"])) * 100_000
    elif op == "special":
        lines[i] = draw(st.sampled_from(SPECIAL)).encode()
    elif op == "crlf":
        lines = [x + b"\r" for x in lines]
    else:
        lines.insert(i, b"")
    return b"\n".join(lines)


def _field(draw, data, seps):
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    sep = bytes([draw(st.sampled_from(list(seps)))]) if seps else b","
    fields = lines[i].split(sep)
    k = draw(st.integers(0, len(fields) - 1))
    op = draw(st.sampled_from(["special", "drop", "repeat", "swap", "text"]))
    if op == "special":
        fields[k] = draw(st.sampled_from(SPECIAL)).encode()
    elif op == "drop":
        del fields[k]
    elif op == "repeat":
        fields.insert(k, fields[k])
    elif op == "swap":
        fields[k], fields[0] = fields[0], fields[k]
    else:
        fields[k] = draw(st.text(max_size=12)).encode("utf-8", "surrogatepass")
    lines[i] = sep.join(fields)
    return b"\n".join(lines)


def _encoding(draw, data, seps):
    text = data.decode("utf-8", "replace")
    enc = draw(st.sampled_from(["utf-16", "utf-8-sig", "latin-1", "utf-32"]))
    return text.encode(enc, "replace")


def _empty(draw, data, seps):
    return draw(st.sampled_from([b"", b"\n", b"\x00", b" \n\n"]))


_EDITS = [_truncate, _flip, _insert, _delete, _lines, _lines, _field, _field, _encoding, _empty]

JSON_SPECIAL = [None, True, 0, -1, 2 ** 64, -(2 ** 63), 1e308, float("nan"), float("inf"), "",
                "x" * 1000, "NaN", [], {}, [1, 2, 3], {"a": 1}, "../secret/x.png", 0.5,
                "\u0000", json.loads("[" * 50 + "]" * 50)]


@st.composite
def mutate_json(draw, doc) -> object:
    """`doc` (parsed JSON) with 1-3 nodes replaced by a wrong type or an odd value, deleted or
    duplicated under another key."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        doc = _edit_node(draw, doc, depth=0)
    return doc


def _edit_node(draw, node, depth: int):
    import copy

    if isinstance(node, (dict, list)) and node and (depth == 0 or draw(st.booleans())):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = draw(st.sampled_from(keys))
        op = draw(st.sampled_from(["descend", "descend", "replace", "delete", "add"]))
        if op == "descend":
            node[k] = _edit_node(draw, node[k], depth + 1)
        elif op == "replace":
            node[k] = copy.deepcopy(draw(st.sampled_from(JSON_SPECIAL)))
        elif op == "delete":
            del node[k]
        elif isinstance(node, dict):
            node[draw(st.sampled_from(["extra", "", "0", str(k) + "_"]))] = copy.deepcopy(node[k])
        else:
            node.append(copy.deepcopy(node[k]))
        return node
    return copy.deepcopy(draw(st.sampled_from(JSON_SPECIAL)))


def dumps(doc) -> bytes:
    """JSON text as Python writes it (NaN and Infinity included, as a careless writer would)."""
    return json.dumps(doc).encode()


def write(path: Path, data: bytes, link: Optional[str] = None) -> Path:
    """Write `data` to `path`, or make `path` a symlink (`link`: "loop", "dir", "dangling")
    instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if link is None:
        path.write_bytes(data)
    elif link == "loop":
        os.symlink(path.name, path)
    elif link == "dir":
        os.symlink(path.parent, path)
    elif link == "dangling":
        os.symlink(path.parent / "no-such-file", path)
    return path

