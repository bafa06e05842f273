"""Start MXNet's parameter-server roles on this machine for a distributed run.

    python -m siamese.launch --workers 2 --servers 1 [--timeout 3600] [--log-dir DIR] \\
        train.py CONFIG [--run-dir DIR] [--set ...]
    python -m siamese.launch --workers 2 --servers 1 train.py --resume RUN_DIR

Starts one scheduler, M servers and N workers on 127.0.0.1 with the DMLC_* environment
variables; each worker runs the given command with `train.kvstore=dist_sync` (unless the command
sets train.kvstore itself or resumes a run, whose config has it). Logs go to RUN_DIR/launch-logs
(or --log-dir), one file per process, with their pids in pids.json.

A worker that fails stops the others, and the launcher exits non-zero. SIGINT or SIGTERM to the
launcher is passed on to the workers, which stop together at the same step and checkpoint; a
worker signalled on its own stops all the others the same way (siamese.train.collective), and
the launcher waits for them and exits 130 / 143 with the resume command. The whole run is
bounded by --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..formats.rundir import RunDir, default_run_dir


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="worker processes (N)")
    p.add_argument("--servers", type=int, default=1, help="parameter-server processes (M)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before all are stopped")
    p.add_argument("--log-dir", type=Path, help="process logs (default RUN_DIR/launch-logs)")
    p.add_argument("--host", default="127.0.0.1", help="scheduler address (DMLC_PS_ROOT_URI)")
    p.add_argument("--grace", type=float, default=60.0,
                   help="seconds the workers get to checkpoint after a signal")
    p.add_argument("command", nargs=argparse.REMAINDER, help="train.py CONFIG [args...]")
    return p.parse_args(argv)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def role_env(role: str, host: str, port: int, servers: int, workers: int) -> Dict[str, str]:
    """The environment MXNet's ps-lite reads to find its role and the scheduler."""
    return {**os.environ, "DMLC_ROLE": role, "DMLC_PS_ROOT_URI": host,
            "DMLC_PS_ROOT_PORT": str(port), "DMLC_NUM_SERVER": str(servers),
            "DMLC_NUM_WORKER": str(workers), "PS_VERBOSE": os.environ.get("PS_VERBOSE", "0")}


def _option(cmd: List[str], name: str) -> Optional[str]:
    for k, a in enumerate(cmd):
        if a == name and k + 1 < len(cmd):
            return cmd[k + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def worker_command(command: List[str]) -> tuple:
    """(the workers' command, the run directory it writes): `train.kvstore=dist_sync` added
    unless the command sets it or resumes (the run's config has it), and a `--run-dir` chosen
    here when the command has none, so the launcher knows where the run goes."""
    cmd = list(command)
    if cmd and cmd[0].endswith(".py"):
        cmd = [sys.executable] + cmd
    resume = _option(cmd, "--resume")
    if resume is None and not any(a.startswith("train.kvstore=") for a in cmd):
        cmd += ["--set", "train.kvstore=dist_sync"]
    run_dir = resume or _option(cmd, "--run-dir")
    if run_dir is None:
        configs = [a for a in cmd[2:] if a.endswith((".yaml", ".yml"))]
        run_dir = str(default_run_dir(configs[0] if configs else "run"))
        cmd += ["--run-dir", run_dir]
    return cmd, Path(run_dir)


def stop_all(procs: Dict[str, subprocess.Popen], sig: int = signal.SIGTERM,
             wait: float = 10.0) -> None:
    """Send `sig` to every process still running, wait up to `wait` s, then kill."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.time() + wait
    for p in procs.values():
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start(args, cmd: List[str], log_dir: Path) -> Dict[str, subprocess.Popen]:
    """Start scheduler, servers and workers; their output goes to log files in `log_dir`."""
    port = free_port(args.host)
    log_dir.mkdir(parents=True, exist_ok=True)
    server_cmd = [sys.executable, "-c", "import mxnet"]  # mxnet runs the role at import
    roles = [("scheduler", "scheduler", server_cmd)]
    roles += [(f"server-{k}", "server", server_cmd) for k in range(args.servers)]
    roles += [(f"worker-{k}", "worker", cmd) for k in range(args.workers)]
    procs = {}
    for name, role, c in roles:
        log = open(log_dir / f"{name}.log", "a")  # a resumed run's logs follow the first's
        log.write(f"--- launch {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(c)}\n")
        log.flush()
        procs[name] = subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT,
                                       env=role_env(role, args.host, port, args.servers,
                                                    args.workers))
        log.close()
    (log_dir / "pids.json").write_text(json.dumps({k: p.pid for k, p in procs.items()}))
    return procs


INTERRUPTED = (128 + signal.SIGINT, 128 + signal.SIGTERM)


def _finish(procs: Dict[str, subprocess.Popen], workers: dict, grace: float) -> int:
    """Workers are stopping on their own (done, or interrupted together): wait for all of them,
    then for the servers and the scheduler. Returns the workers' common exit code."""
    deadline = time.time() + grace
    for p in workers.values():
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            stop_all(procs)
            return 1
    try:  # servers and scheduler leave once the workers have finished
        for p in procs.values():
            p.wait(max(0.1, min(30.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        stop_all(procs)
    codes = {p.returncode for p in workers.values()}
    return codes.pop() if len(codes) == 1 else 1


def supervise(procs: Dict[str, subprocess.Popen], timeout: float, grace: float) -> int:
    """Wait for the workers; stop everything on a failure or the timeout. Returns exit code."""
    deadline = time.time() + timeout
    workers = {k: p for k, p in procs.items() if k.startswith("worker")}
    while True:
        codes = {k: p.poll() for k, p in workers.items()}
        if any(c in INTERRUPTED for c in codes.values()):
            return _finish(procs, workers, grace)  # the others stop at the same step
        failed = [k for k, p in procs.items() if p.poll() not in (None, 0)]
        if failed:
            print(f"launch: {failed[0]} exited with {procs[failed[0]].returncode}; stopping "
                  f"the others", file=sys.stderr)
            stop_all(procs)
            return 1
        if all(c == 0 for c in codes.values()):
            return _finish(procs, workers, grace)
        if time.time() > deadline:
            print(f"launch: timeout after {timeout:.0f}s; stopping all", file=sys.stderr)
            stop_all(procs)
            return 1
        time.sleep(0.2)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.command or args.workers < 1 or args.servers < 1:
        print("error: give --workers N >= 1, --servers M >= 1 and a command "
              "(train.py CONFIG ...)", file=sys.stderr)
        return 2
    cmd, run_dir = worker_command(args.command)
    log_dir = args.log_dir or RunDir(run_dir) / "launch-logs"
    procs = start(args, cmd, log_dir)
    workers = {k: p for k, p in procs.items() if k.startswith("worker")}

    def forward(signum, frame):  # the workers checkpoint together, then exit 128 + signum
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signum)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, forward)
    code = supervise(procs, args.timeout, args.grace)
    if code in INTERRUPTED:
        print(f"launch: interrupted; every worker wrote its checkpoint. Resume with: python -m "
              f"siamese.launch --workers {args.workers} --servers {args.servers} train.py "
              f"--resume {run_dir}", file=sys.stderr)
    print(f"launch: {'done' if code == 0 else 'stopped'} (exit {code}); logs in {log_dir}",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
