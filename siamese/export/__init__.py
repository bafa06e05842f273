"""Export: write the branch (or the two branches, or the pair scorer) as MXNet symbol + params
with its model.json, verify it by reloading, and optionally ONNX.

Lives here: `writer` (export_model, export_run), `onnx` (mx.onnx conversion, onnxruntime
check; the `.[onnx]` extra), `optimize` (fused and int8 serving exports of a branch, verified
against the float branch and on the test pairs), `cli` (`python -m siamese.export RUN_DIR`,
a front door).
May import: config, formats, data (views), models (the architecture registry); the cli also
rebuilds a run (siamese.train.rebuild) and chooses its threshold (siamese.eval). Nothing below
imports export.
"""
