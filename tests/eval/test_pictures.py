"""Pictures: curves.png, mistakes.png, embeddings.png: real PNGs, never a reason to stop."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from siamese.train.curves import plot_curves, try_plot_curves

ROWS = [{"epoch": e, "train_loss": 1.0 / e, "val_auc": 0.9 + 0.01 * e, "val_eer": 0.1 / e,
         "lr": 0.001 * (1 - e / 4)} for e in (1, 2, 3)]


def test_curves_are_a_png_of_a_sensible_size(tmp_path):
    plot_curves(tmp_path / "curves.png", ROWS, best_epoch=3)
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and 800 <= im.width <= 2000 and 250 <= im.height <= 800
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left


def test_the_validation_panel_draws_n_way_accuracy_when_logged(tmp_path):
    plot_curves(tmp_path / "plain.png", ROWS, best_epoch=3)
    nway = [dict(r, val_nway=0.5 + 0.1 * r["epoch"]) for r in ROWS]
    plot_curves(tmp_path / "nway.png", nway, best_epoch=3)
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "nway.png") as b:
        x, y = np.asarray(a.convert("RGB"), float), np.asarray(b.convert("RGB"), float)
    width = x.shape[1]
    changed = np.abs(x - y).sum(axis=(0, 2))  # per column
    assert changed[width // 3:2 * width // 3].sum() > 0  # the middle panel has a new line
    assert changed[:width // 4].sum() == 0  # the loss panel is the same


def test_a_plotting_failure_is_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert not try_plot_curves(tmp_path / "curves.png", [{"epoch": 1}], best_epoch=1)
    assert "not drawn" in caplog.text
    assert not (tmp_path / "curves.png").exists()


def test_a_run_draws_its_curves(trained_run):
    with Image.open(trained_run[0] / "curves.png") as im:
        assert im.format == "PNG"


def test_worst_mistakes_by_hand():
    from siamese.eval.mistakes import worst

    # Distances (lower = same), threshold 0.5. Different pairs at 0.1 and 0.4 are accepted
    # (0.1 the worst); same pairs at 0.9 and 0.6 rejected (0.9 the worst).
    scores = np.array([0.1, 0.4, 0.7, 0.2, 0.9, 0.6])
    labels = np.array([0, 0, 0, 1, 1, 1])
    accepts, rejects = worst(scores, labels, 0.5, higher_is_similar=False)
    assert accepts.tolist() == [0, 1] and rejects.tolist() == [4, 5]
    accepts, rejects = worst(-scores, labels, -0.5, higher_is_similar=True)
    assert accepts.tolist() == [0, 1] and rejects.tolist() == [4, 5]


def test_eval_draws_its_mistakes(trained_run, tmp_path):
    import eval as eval_cli

    run_dir, _, _ = trained_run
    assert eval_cli.main([str(run_dir), "--out", str(tmp_path / "e.json")]) == 0
    with Image.open(tmp_path / "mistakes.png") as im:
        assert im.format == "PNG" and im.width > 300


def test_pca_by_hand():
    from siamese.eval.embedmap import pca2

    # Points on a line along (1, 1, 0) plus a small spread along z: the first component is
    # the line (up to sign), the second the z spread.
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    z = np.array([0.1, -0.2, 0.2, -0.2, 0.1])  # mean 0, orthogonal to t
    x = np.stack([t, t, z], 1)
    p = pca2(x)
    np.testing.assert_allclose(np.abs(p[:, 0]), np.abs(t) * np.sqrt(2), atol=1e-9)
    np.testing.assert_allclose(np.abs(p[:, 1]), np.abs(z), atol=1e-9)


def test_eval_plots_an_embedding_map(trained_run, tmp_path, capsys):
    import json

    import eval as eval_cli

    run_dir, root, _ = trained_run
    out = tmp_path / "e.json"
    assert eval_cli.main([str(run_dir), "--plot-embeddings", "--root", str(root),
                          "--out", str(out)]) == 0
    m = json.loads(out.read_text())["embedding_map"]
    assert m["methods"][0] == "PCA" and m["images"] == 40 and m["classes"] == 4
    with Image.open(tmp_path / "embeddings.png") as im:
        assert im.format == "PNG" and im.width >= 500
    assert "embedding map" in capsys.readouterr().out
