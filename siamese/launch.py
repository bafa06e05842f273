"""Start MXNet's parameter-server roles on this machine for a distributed run.

    python -m siamese.launch --workers 2 --servers 1 [--timeout 3600] [--log-dir DIR] \\
        train.py CONFIG --run-dir DIR [--set ...]

Starts one scheduler, M servers and N workers on 127.0.0.1 with the DMLC_* environment
variables; each worker runs the given command with `train.kvstore=dist_sync` (unless the command
sets train.kvstore itself). If a worker fails, the others are stopped and the launcher exits
non-zero; the whole run is bounded by --timeout. Logs go to --log-dir, one file per process,
with their pids in pids.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="worker processes (N)")
    p.add_argument("--servers", type=int, default=1, help="parameter-server processes (M)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before all are stopped")
    p.add_argument("--log-dir", type=Path, default=Path("launch-logs"))
    p.add_argument("--host", default="127.0.0.1", help="scheduler address (DMLC_PS_ROOT_URI)")
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


def worker_command(command: List[str]) -> List[str]:
    cmd = list(command)
    if cmd and cmd[0].endswith(".py"):
        cmd = [sys.executable] + cmd
    if not any(a.startswith("train.kvstore=") for a in cmd):
        cmd += ["--set", "train.kvstore=dist_sync"]
    return cmd


def stop_all(procs: Dict[str, subprocess.Popen]) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 10
    for p in procs.values():
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start(args) -> Dict[str, subprocess.Popen]:
    """Start scheduler, servers and workers; their output goes to log files."""
    port = free_port(args.host)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    server_cmd = [sys.executable, "-c", "import mxnet"]  # mxnet runs the role at import
    roles = [("scheduler", "scheduler", server_cmd)]
    roles += [(f"server-{k}", "server", server_cmd) for k in range(args.servers)]
    roles += [(f"worker-{k}", "worker", worker_command(args.command))
              for k in range(args.workers)]
    procs = {}
    for name, role, cmd in roles:
        log = open(args.log_dir / f"{name}.log", "w")
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                       env=role_env(role, args.host, port, args.servers,
                                                    args.workers))
        log.close()
    (args.log_dir / "pids.json").write_text(json.dumps({k: p.pid for k, p in procs.items()}))
    return procs


def supervise(procs: Dict[str, subprocess.Popen], timeout: float) -> int:
    """Wait for the workers; stop everything on a failure or the timeout. Returns exit code."""
    deadline = time.time() + timeout
    workers = {k: p for k, p in procs.items() if k.startswith("worker")}
    while True:
        failed = [k for k, p in procs.items() if p.poll() not in (None, 0)]
        if failed:
            print(f"launch: {failed[0]} exited with {procs[failed[0]].returncode}; stopping "
                  f"the others", file=sys.stderr)
            stop_all(procs)
            return 1
        if all(p.poll() == 0 for p in workers.values()):
            try:  # servers and scheduler leave once the workers have finished
                for p in procs.values():
                    p.wait(max(0.1, min(30.0, deadline - time.time())))
            except subprocess.TimeoutExpired:
                stop_all(procs)
            return 0
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
    procs = start(args)
    try:
        code = supervise(procs, args.timeout)
    except KeyboardInterrupt:
        stop_all(procs)
        return 130
    print(f"launch: {'done' if code == 0 else 'failed'}; logs in {args.log_dir}",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
