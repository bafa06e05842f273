"""Kill a real training run with SIGKILL at many moments, resume it each time, and compare the
end with an uninterrupted run.

    python scripts/fault_injection.py [--config configs/pairs.yaml] [--kills 20] [--seed 0]
                                      [--out runs/faults] [--reference RUN_DIR]
    python scripts/fault_injection.py --collect runs/faults-s1 runs/faults-s2 ... --csv F.csv

The first kills can land at any instant from the very start of the process, before the run
folder or its config.yaml exist: every resume is `train.py CONFIG --resume RUN_DIR`, which starts
such a run from the beginning (and one with a config but no checkpoint from its saved config).
Each kill's phase, moment, what it left in the run folder and the outcome of the process started
after it are listed in OUT/faults.json (`each_kill`), the processes' stderr in OUT/stderr/.

Phases aimed at, in turn (each kill at a random moment within its phase):
- first-start: the first `--first` kills (while there is no checkpoint yet): any instant in the
  first `--first-window` seconds of a start, from the process's first instant (imports, before
  the run folder or config.yaml exist) through decoding, the pair lists, the first epoch's steps;
- decoding: between the start of the process and the end of decoding (the "data:" log line);
- mid-epoch: a random moment inside an epoch's training steps;
- checkpoint: the moment a checkpoint's temporary file appears (polled every millisecond);
- validation: just after an epoch's training steps end (timed from the last epoch's length);
- export: the moment the export's temporary folder appears.
After every kill, every file under its final name must be whole (checkpoints readable, JSON
parseable, the export loadable); a torn file is counted. The run is then resumed. At the end
the interrupted run's metrics.json and log.jsonl (all but timings) must equal the
uninterrupted run's in every digit. Prints a table and writes OUT/faults.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHASES = ("first-start", "decoding", "mid-epoch", "checkpoint", "validation", "export")
CYCLE = PHASES[1:-1]
CLOCK = ("seconds", "examples_per_s", "train_seconds")


def start(args: list, err: Path = None) -> subprocess.Popen:
    """train.py with `args`; its stderr goes to `err` (read for the outcome of a resume)."""
    sink = open(err, "w") if err else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=sink)
    proc.started = time.time()
    proc.err = err
    return proc


def state_of(run: Path) -> str:
    """What a kill left: nothing, the config only, pairs, or the newest checkpoint's place."""
    from siamese.train.resume import newest_checkpoint

    if not (run / "config.yaml").is_file():
        return "no config.yaml" if run.is_dir() else "nothing"
    try:
        _, meta = newest_checkpoint(run)
        return f"checkpoint epoch {meta['epoch']} batch {meta.get('batch', 0)}"
    except Exception:  # noqa: BLE001  no checkpoint yet: say what else is there
        there = [p.name for p in (run, run / "pairs") if p.is_dir() for p in p.iterdir()]
        return "config" + (", pairs" if any(n.endswith(".csv") for n in there) else "") + \
            (", storage.json" if "storage.json" in there else "") + ", no checkpoint"


def outcome(proc: subprocess.Popen) -> str:
    """How the process started after a kill went: its resume line and how it ended."""
    text = proc.err.read_text() if proc.err and proc.err.exists() else ""
    how = "resumed from its checkpoint" if "resuming from" in text else \
        "restarted from the beginning" if "starting it" in text else \
        "started with a config only" if "--resume" not in proc.args else "not yet told how"
    end = "killed again" if proc.returncode == -signal.SIGKILL else f"exit {proc.returncode}"
    return f"{how}, {end}"


def lines(path: Path, text: str) -> int:
    try:
        return path.read_text().count(text)
    except OSError:
        return 0


def log_rows(run: Path) -> list:
    from siamese.train.resume import read_log

    return read_log(run / "log.jsonl")


def appears(folder: Path, pattern: str, proc: subprocess.Popen, limit: float) -> bool:
    """Poll every millisecond for a new file matching `pattern` (one a killed write left
    before does not count); False if the process ended."""
    old = listing(folder, pattern)
    end = time.time() + limit
    while time.time() < end and proc.poll() is None:
        if listing(folder, pattern) - old:
            return True
        time.sleep(0.001)
    return False


def aim(phase: str, run: Path, proc: subprocess.Popen, rng: random.Random,
        window: float = 15.0) -> bool:
    """Wait for a moment of `phase`; True when it came (then the caller kills)."""
    log = run / "train.log"
    if phase == "first-start":  # any instant before the first checkpoint, from the very start
        deadline = time.time() + rng.uniform(0.0, window)
        while time.time() < deadline and proc.poll() is None and not checkpointed(run):
            time.sleep(0.002)
        return proc.poll() is None and not checkpointed(run)
    if phase == "decoding":
        before = lines(log, " data: ")
        deadline = time.time() + rng.uniform(0.5, 2.5)
        while time.time() < deadline and proc.poll() is None:
            if lines(log, " data: ") > before:
                return False  # decoding already over: try again on the next resume
            time.sleep(0.005)
        return proc.poll() is None
    if phase in ("mid-epoch", "validation"):
        rows = len(log_rows(run))
        while len(log_rows(run)) == rows and proc.poll() is None:  # an epoch ends
            time.sleep(0.01)
        row = (log_rows(run) or [{}])[-1]
        length = row.get("seconds", 5.0)
        delay = rng.uniform(0.2, 0.8) * length if phase == "mid-epoch" else \
            length + rng.uniform(0.05, 0.3)
        time.sleep(delay)
        return proc.poll() is None
    if phase == "checkpoint":
        return appears(run / "checkpoints", ".*.tmp-*", proc, 300)
    return appears(run, ".export.tmp-*", proc, 600)


def listing(folder: Path, pattern: str) -> set:
    """The files matching `pattern` in `folder`; empty while it does not exist (a restart
    removes and makes it again while this polls)."""
    try:
        return set(folder.glob(pattern))
    except OSError:
        return set()


def checkpointed(run: Path) -> bool:
    return bool(listing(run / "checkpoints", "*.ckpt"))


def torn_files(run: Path) -> list:
    """Files under their final names that cannot be read whole."""
    from siamese.errors import UserError
    from siamese.formats import checkpoint
    from siamese.scoring.bundles import open_blocks

    torn = []
    for f in sorted(listing(run / "checkpoints", "*.ckpt")):
        try:
            checkpoint.read(f)
        except UserError:
            torn.append(str(f))
    for name in ("metrics.json", "sharing.json"):
        try:
            if (run / name).exists():
                json.loads((run / name).read_text())
        except ValueError:
            torn.append(name)
    if (run / "export" / "model.json").exists():
        try:
            open_blocks(run / "export")
        except UserError:
            torn.append("export")
    return torn


def figures(run: Path) -> tuple:
    rows = [{k: v for k, v in r.items() if k not in CLOCK} for r in log_rows(run)]
    metrics = json.loads((run / "metrics.json").read_text())
    return rows, {k: v for k, v in metrics.items() if k not in CLOCK}


def collect(outs: list, csv_path: Path) -> int:
    """The figures of several runs of this script (their OUT folders): a Markdown table per
    seed on stdout, and every kill (seed, phase, moment, what it left, outcome) in a CSV."""
    import csv

    reports = [json.loads((Path(o) / "faults.json").read_text()) for o in outs]
    print("| seed | kills | by phase (" + " / ".join(PHASES) + ") | resumes | resumes that "
          "failed | torn files | final figures equal to an uninterrupted run |")
    print("|---|---|---|---|---|---|---|")
    for r in reports:
        phases = " / ".join(str(r["kills_by_phase"][ph]) for ph in PHASES)
        print(f"| {r['seed']} | {r['kills']} | {phases} | {r['resumes']} | "
              f"{r['resumes_failed']} | {len(r['torn_files'])} | "
              f"{'yes' if r['figures_equal_in_every_digit'] else 'NO'} |")
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "kill", "phase", "seconds_after_start", "left", "torn_files",
                    "outcome"])
        for r in reports:
            for k in r["each_kill"]:
                w.writerow([r["seed"], k["kill"], k["phase"], k["seconds_after_start"],
                            k["left"], k["torn_files"], k.get("outcome", "")])
    return 0 if all(r["figures_equal_in_every_digit"] and not r["torn_files"]
                    and not r["resumes_failed"] for r in reports) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/pairs.yaml")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/faults"))
    p.add_argument("--reference", type=Path, help="an uninterrupted run of the same config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides, given to every start and resume (e.g. a shorter "
                        "train.pairs_per_epoch); the --reference run must have the same")
    p.add_argument("--first", type=int, default=3,
                   help="the first kills land at any instant before the first checkpoint")
    p.add_argument("--first-window", type=float, default=15.0,
                   help="seconds after a start those kills are drawn from (about the time to "
                        "the first checkpoint: ~13 s for configs/pairs.yaml on 2 cores)")
    p.add_argument("--collect", nargs="+", metavar="OUT",
                   help="only summarise earlier runs' OUT folders (a table, and --csv)")
    p.add_argument("--csv", type=Path, default=Path("faults.csv"),
                   help="with --collect: every kill, one row each")
    args = p.parse_args(argv)
    if args.collect:
        return collect(args.collect, args.csv)
    rng = random.Random(args.seed)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sets = [x for item in args.set for x in ("--set", item)]
    whole = args.reference
    if whole is None:
        whole = out / "whole"
        print(f"uninterrupted run -> {whole}", file=sys.stderr)
        assert start([args.config, "--run-dir", str(whole), "--force", *sets]).wait() == 0
    cut = out / "cut"
    shutil.rmtree(cut, ignore_errors=True)
    logs = out / "stderr"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    epochs = len(log_rows(whole))
    proc = start([args.config, "--run-dir", str(cut), "--force", *sets], logs / "000.err")
    kills, tried, torn, resumes, failed, rows = [], 0, [], 0, [], []
    owner = None  # the kill whose aftermath the running process is
    exports = max(1, args.kills // len(PHASES))  # the last kills hit the export, at the end
    while len(kills) < args.kills and tried < 6 * args.kills:
        trained = len(log_rows(cut)) >= epochs - 1  # in its last epoch: aim at the export
        phase = "export" if trained or len(kills) >= args.kills - exports else \
            "first-start" if len(kills) < args.first and not checkpointed(cut) else \
            CYCLE[tried % len(CYCLE)]
        tried += 1
        if aim(phase, cut, proc, rng, args.first_window):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(phase)
            bad = torn_files(cut)
            torn += bad
            rows.append({"kill": len(kills), "phase": phase,
                         "seconds_after_start": round(time.time() - proc.started, 2),
                         "left": state_of(cut), "torn_files": len(bad)})
            print(f"kill {len(kills):2d} during {phase:10s} after "
                  f"{rows[-1]['seconds_after_start']:6.2f} s: {rows[-1]['left']}; "
                  f"torn files: {len(bad)}", file=sys.stderr)
        elif proc.poll() is not None and proc.returncode == 0:
            break  # the run finished before every kill was used
        if proc.poll() is not None:
            if proc.returncode not in (0, -signal.SIGKILL):
                failed.append(proc.returncode)
            if owner is not None:
                rows[owner]["outcome"] = "; ".join(
                    filter(None, [rows[owner].get("outcome"), outcome(proc)]))
            # The config file too: a run killed before it saved config.yaml starts from it.
            proc = start([args.config, "--resume", str(cut), *sets],
                         logs / f"{resumes + 1:03d}.err")
            owner = len(rows) - 1 if rows else None
            resumes += 1
    code = proc.wait()
    if owner is not None:
        rows[owner]["outcome"] = "; ".join(filter(None, [rows[owner].get("outcome"),
                                                         outcome(proc)]))
    equal = code == 0 and figures(cut) == figures(whole)
    report = {"config": args.config, "set": args.set, "kills": len(kills),
              "kills_by_phase": {ph: kills.count(ph) for ph in PHASES},
              "resumes": resumes, "resumes_failed": len(failed) + (code != 0),
              "torn_files": torn, "final_exit": code, "figures_equal_in_every_digit": equal,
              "seconds": time.time() - t0, "seed": args.seed, "each_kill": rows}
    (out / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if equal and not torn and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
