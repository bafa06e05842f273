"""The docs: every Python snippet of "Use the model elsewhere" (docs/export.md) runs against a
real export; links between README.md and docs/*.md resolve; README opens with the set-up lines."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from conftest import ROOT, extra

PLACEHOLDER = "runs/pairs-20261124-140000/export"
SNIPPETS_DOC = "docs/export.md"
# README's two copy-paste set-up lines (CI runs the second one's commands): first train, then test.
SETUP_LINES = [
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
    "python train.py configs/pairs.yaml",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test,onnx]' && "
    "python -m pytest -q",
]


def snippets(heading: str, doc: str = SNIPPETS_DOC) -> list:
    text = (ROOT / doc).read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_use_elsewhere_snippets_run_and_agree(trained_run, tmp_path, capsys):
    extra("onnxruntime")
    from siamese.commands.export import main as export_main

    run_dir, _, _ = trained_run
    out = tmp_path / "export"
    assert export_main([str(run_dir), "--onnx", "--out", str(out)]) == 0
    blocks = snippets("Use the model elsewhere")
    assert len(blocks) == 3
    # The snippets read digits; the tiny run was trained on 16x16 grayscale: resize handles it.
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        capsys.readouterr()
        for code in blocks:
            assert PLACEHOLDER in code or "export_dir" in code
            exec(compile(code.replace(PLACEHOLDER, str(out)), SNIPPETS_DOC, "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert re.match(r"(same|different) \d", capsys.readouterr().out)
    e = namespace["e"]
    assert e.shape == (2, 8)
    np.testing.assert_allclose(namespace["e_module"], e, atol=1e-5)
    np.testing.assert_allclose(namespace["e_onnx"], e, atol=1e-5)
    # The snippet's hand-written preprocessing equals the package's.
    from siamese.data.images import load_images
    from siamese.formats.preprocess import to_tensor

    pre = namespace["pre"]
    files = [ROOT / "data/digits/3/0000.png", ROOT / "data/digits/3/0001.png"]
    ours = to_tensor(load_images(files, pre["resize"], 1), pre["mean"], pre["std"])
    np.testing.assert_array_equal(namespace["x"], ours)


def _markdown_files() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`]*`", "", text)


def _anchors(text: str) -> set:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1 on repeats."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    ids: set = set()
    for title in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in ids:
            n += 1
            unique = f"{slug}-{n}"
        ids.add(unique)
    return ids


def test_relative_links_point_to_existing_files():
    broken = []
    for md in _markdown_files():
        for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", _prose(md.read_text())):
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (md.parent / path) if path else md
            if not dest.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
                broken.append(f"{md.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_setup_lines_open_the_readme():
    text = (ROOT / "README.md").read_text()
    fences = re.findall(r"^```(\S*)\n(.*?)^```", text, re.S | re.M)
    assert fences and fences[0][0] == "bash", "README's first code block must be the bash set-up"
    bash_lines = [line for lang, body in fences if lang == "bash"
                  for line in body.splitlines() if line.strip()]
    assert bash_lines[:2] == SETUP_LINES


def _code_files() -> list:
    return [p for d in ("siamese", "scripts", "tests", "configs") for p in (ROOT / d).rglob("*")
            if p.suffix in (".py", ".yaml", ".md") and "fixtures" not in p.parts]


def test_the_code_cites_only_files_of_the_repository():
    """A fact the code relies on is in the project's own docs: every `docs/*.md` a source file
    names exists (and the section it quotes, for docs/mxnet.md); no file names a Markdown file
    that leaves the repository, or a capitalised notes file the repository does not hold."""
    wrong = []
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "mxnet.md").read_text(), re.M)
    for path in _code_files():
        text = path.read_text()
        name = path.relative_to(ROOT)
        wrong += [f"{name}: cites {m} (outside the repository)"
                  for m in re.findall(r"\.\./[\w./-]*\.md\b", text)]
        wrong += [f"{name}: cites {m} (no such file in the repository)"
                  for m in set(re.findall(r"\b[A-Z][A-Z_]+\.md\b", text))
                  if not list(ROOT.glob(f"**/{m}"))]
        wrong += [f"{name}: {d} (no such file)" for d in re.findall(r"docs/[\w./-]+?\.md", text)
                  if not (ROOT / d).is_file()]
        for section in re.findall(r'docs/mxnet\.md, "([^"]+)"', " ".join(text.split())):
            if not any(h.startswith(section) for h in headings):
                wrong.append(f"{name}: docs/mxnet.md has no section {section!r}")
    assert not wrong, wrong
