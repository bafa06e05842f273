"""The web page ships with the package: every file of siamese/service/static is package data
(pyproject.toml), so a wheel, not only an editable install, serves it."""

from __future__ import annotations

import fnmatch
import json
import re

from conftest import ROOT


def test_static_files_are_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]", 1)[1]
    data = json.loads(re.search(r'"siamese.service" = (\[.*?\])', section).group(1))
    files = [p.relative_to(ROOT / "siamese" / "service").as_posix()
             for p in (ROOT / "siamese" / "service" / "static").iterdir()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, pattern) for pattern in data), f


def test_serve_refuses_bad_starts_with_exit_2(tmp_path, capsys):
    from conftest import extra

    extra("fastapi")
    extra("uvicorn")
    from siamese.commands import main as console
    from siamese.commands import serve

    assert "serve" in console.TOOLS
    assert serve.main([str(tmp_path / "missing")]) == 2
    assert "model.json" in capsys.readouterr().err
    assert serve.main([str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err
