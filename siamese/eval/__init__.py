"""Evaluation: verification metrics in plain numpy, scoring embeddings, thresholds (chosen on
validation pairs, never on the scored ones), n-way one-shot episodes, the comparator that
scores pairs with any architecture, reports and plots.

Lives here: `metrics` (add a metric here; numpy only, no mxnet), `scoring`, `thresholds`,
`oneshot`, `comparator` (also opens an export bundle to score with), `report` (eval.py),
`plots`; identification: `retrieval` (Recall@k, MAP@R, DIR@FAR; numpy only), `search` (exact
and FAISS nearest-neighbour search), `identify` (ranking identities, unknown, open-set
calibration), `enroll` (galleries made with an export), `identification` (eval.py --retrieval
/ --open-set), `idplots`.
May import: config, formats, data (decoding images, pair files), models (the architecture
registry), losses.distances. Never training or export.
"""
