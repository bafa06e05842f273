"""The `siamese` console command: one command whose subcommands are the tools, the same as
`python train.py`, `python eval.py` and `python -m siamese.<tool>`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from siamese.commands.main import TOOLS, main


def test_help_lists_every_tool(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "eval", "export", "predict", "gallery", "pack", "launch", "bench"):
        assert f"  {name} " in out and name in TOOLS


def test_an_unknown_tool_is_one_line_and_exit_2(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown tool 'trian'" in err[0] and "train" in err[0]
    assert main([]) == 2


def test_a_subcommand_is_the_tool(tmp_path, capsys):
    """`siamese train BAD.yaml` answers as `python train.py BAD.yaml`: exit 2, one line
    naming the file and the key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: many\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "train.epochs" in err[0]


@pytest.mark.slow
def test_the_installed_console_script_and_python_m_siamese(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: many\n")
    script = shutil.which("siamese") or str(ROOT / ".venv" / "bin" / "siamese")
    for cmd in ([script], [sys.executable, "-m", "siamese"]):
        out = subprocess.run(cmd + ["train", str(bad)], capture_output=True, text=True,
                             cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "train.epochs" in out.stderr
