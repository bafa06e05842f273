"""Evaluation of verification: metrics in plain numpy, thresholds (chosen on validation pairs,
never on the scored ones), n-way one-shot episodes, eval.py's report, its plots and table.

Lives here: `metrics` (add a metric here; numpy only, no mxnet), `thresholds`, `oneshot` (n-way
K-shot accuracy), `within` (--within-group: groups of episodes' classes), `tta` (--tta: test-
time averaging over shifted copies; --symmetries: turns side by side), `episodes` (fixed
episodes: Lake's runs, CSV), `model` (the export under evaluation: its comparator, model.json,
images and scores), `report` (eval.py: what a request computes, composing scoring and
identification), `present` (the JSON report, the table), `plots` (ROC, score histograms),
`mistakes` (the worst false accepts and rejects), `embedmap` (a 2-D map of the embeddings).
May import: config, formats, data (decoding images, pair files), scoring, identification
(eval.py's --retrieval / --open-set). Never training or export.
"""
