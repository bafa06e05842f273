"""Run the fuzzing properties of tests/fuzz for a long time, with new seeds, and report per
reader: examples tried, how many the reader refused with its own error, distinct failures
found, and the slowest example.

    python scripts/fuzz.py --minutes 30 [--seed S] [--only exports,images] [--json OUT]

The properties are the suite's (tests/fuzz/test_fuzz_*.py), under the "long" Hypothesis profile:
each is called again and again, `--batch` examples a call, each call with the next seed, the
property that has had the least time so far next (each gets the same share of the time), until
the time is up. A failure is shrunk by Hypothesis to its smallest input; failures
are told apart by exception type and the line that raised it (the innermost frame in siamese/,
else the innermost one), and the first smallest input of each is printed and kept in --json.
Each call runs in a forked child: a crash inside a native library (a segfault, an out-of-memory
kill) is reported as a failure with its seed, and the run goes on; --json is rewritten every 20
calls, so a run cut short still leaves its figures.
Exit status 1 when any failure was found.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = {"config": "config", "pairfiles": "pair lists", "episodes": "episodes",
            "images": "images", "rundir": "run directories", "checkpoint": "checkpoints",
            "exports": "exports", "gallery": "galleries", "recordio": "recordio packs",
            "cache": "decoded cache", "cli": "command line"}


# HTTP requests need the running service (pytest's `served` fixture): their long run is
# SIAMESE_FUZZ_LONG=1 SIAMESE_FUZZ_EXAMPLES=N python -m pytest tests/fuzz/test_fuzz_http.py
NEEDS_SERVER = {"test_fuzz_http"}


def properties(only: set) -> list:
    """(family, name, function) of every Hypothesis property in tests/fuzz."""
    out = []
    for path in sorted((ROOT / "tests" / "fuzz").glob("test_fuzz_*.py")):
        if path.stem in NEEDS_SERVER:
            continue
        family = FAMILIES.get(path.stem[len("test_fuzz_"):], path.stem)
        if only and family not in only and path.stem not in only:
            continue
        module = importlib.import_module(f"tests.fuzz.{path.stem}")
        for name in sorted(dir(module)):
            fn = getattr(module, name)
            if name.startswith("test_") and getattr(fn, "is_hypothesis_test", False):
                out.append((family, name, fn))
    return out


def signature(e: BaseException) -> str:
    """Exception type and the line that raised it (innermost in the package, if any)."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f"{os.sep}siamese{os.sep}" in f.filename
            and ".venv" not in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(e).__name__} at {where}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--seed", type=int, help="first seed (default: a new one, printed)")
    p.add_argument("--batch", type=int, default=100, help="examples per call of a property")
    p.add_argument("--only", default="", help="comma-separated families or test modules")
    p.add_argument("--json", type=Path, help="write the figures and failures here")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 31)
    os.environ["SIAMESE_FUZZ_LONG"] = "1"
    os.environ["SIAMESE_FUZZ_EXAMPLES"] = str(args.batch)
    import logging
    import warnings

    logging.disable(logging.CRITICAL)  # the readers' warnings on damaged files, by the thousand
    warnings.simplefilter("ignore")  # Pillow's on corrupt EXIF and large images, likewise
    from hypothesis import seed as use_seed
    from hypothesis import settings

    from tests.fuzz import harness

    settings.load_profile("long")
    props = properties({s.strip() for s in args.only.split(",") if s.strip()})
    print(f"fuzz: {len(props)} properties, seed {seed}, {args.minutes:g} minutes",
          file=sys.stderr)
    failures: dict = {}
    calls = 0
    spent = [0.0] * len(props)  # each property gets the same share of the time
    end = time.time() + 60 * args.minutes
    while time.time() < end:
        k = min(range(len(props)), key=spent.__getitem__)
        family, name, fn = props[k]
        use_seed(seed + calls)(fn)
        calls += 1
        t0 = time.time()
        found = isolated(fn, harness.STATS)
        spent[k] += time.time() - t0
        if found is not None:
            sig = f"{family}: {found['signature']}"
            if sig not in failures:
                failures[sig] = {"family": family, "property": name, "seed": seed + calls - 1,
                                 "error": found["error"], "smallest": found["notes"]}
                print(f"FAILURE {sig} ({name}, seed {seed + calls - 1})\n"
                      f"{found['notes'][:1500]}", file=sys.stderr)
        if calls % 20 == 0:  # figures so far, in case the run is cut short
            report(harness.STATS, failures, seed, calls, args, quiet=True)
    report(harness.STATS, failures, seed, calls, args)
    return 1 if failures else 0


def isolated(fn, stats: dict):
    """Call the property in a forked child, so a crash inside a native library (a segfault,
    the kernel's out-of-memory kill) is a failure to report, not the end of the run. The
    child's statistics are merged into `stats`; returns None or the failure."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        before = {k: dict(v) for k, v in stats.items()}
        out = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001  a failure of the property
            out = {"signature": signature(e), "error": f"{type(e).__name__}: {str(e)[:500]}",
                   "notes": "\n".join(getattr(e, "__notes__", []))[:3000]}
        delta = {k: {"examples": v["examples"] - before.get(k, {}).get("examples", 0),
                     "errors": v["errors"] - before.get(k, {}).get("errors", 0),
                     "slowest": v["slowest"]} for k, v in stats.items()}
        with os.fdopen(w, "wb") as fh:
            pickle.dump((delta, out), fh)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status}"
        return {"signature": f"crash ({how})", "error": "the process died", "notes": ""}
    delta, out = pickle.loads(data)
    for k, v in delta.items():
        s = stats.setdefault(k, {"examples": 0, "errors": 0, "slowest": (0.0, "")})
        s["examples"] += v["examples"]
        s["errors"] += v["errors"]
        if v["slowest"][0] > s["slowest"][0]:
            s["slowest"] = v["slowest"]
    return out


def report(stats: dict, failures: dict, seed: int, calls: int, args, quiet=False) -> None:
    rows = []
    for family in sorted(set(stats) | {f["family"] for f in failures.values()}):
        s = stats.get(family, {"examples": 0, "errors": 0, "slowest": (0.0, "")})
        found = sum(1 for f in failures.values() if f["family"] == family)
        rows.append({"reader": family, "examples": s["examples"], "refused": s["errors"],
                     "distinct_failures": found, "slowest_s": round(s["slowest"][0], 3),
                     "slowest_example": s["slowest"][1][:120]})
    if quiet:
        if args.json:
            args.json.write_text(json.dumps({"seed": seed, "minutes": args.minutes,
                                             "calls": calls, "partial": True, "readers": rows,
                                             "failures": failures}, indent=2) + "\n")
        return
    print(f"\n{'reader':18s} {'examples':>9s} {'refused':>8s} {'failures':>8s} {'slowest':>8s}")
    for r in rows:
        print(f"{r['reader']:18s} {r['examples']:9d} {r['refused']:8d} "
              f"{r['distinct_failures']:8d} {r['slowest_s']:7.2f}s  {r['slowest_example'][:60]}")
    total = sum(r["examples"] for r in rows)
    print(f"{'all':18s} {total:9d} {sum(r['refused'] for r in rows):8d} {len(failures):8d}"
          f"   ({calls} calls, seed {seed}, {args.minutes:g} min)")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "minutes": args.minutes, "calls": calls,
                                         "readers": rows, "failures": failures}, indent=2)
                             + "\n")


if __name__ == "__main__":
    sys.exit(main())
