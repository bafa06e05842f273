"""Export: write the branch (or the two branches, or the pair scorer) as MXNet symbol + params
with its model.json, verify it by reloading, and optionally ONNX; the serving exports.

Lives here: `writer` (export_model, export_run), `onnx` (mx.onnx conversion, onnxruntime
check; the `.[onnx]` extra), `rewrites` (OPTIMIZERS: the fused and int8 graph rewrites),
`optimize` (a serving export of a branch, verified against the float branch and on the test
pairs), `rerun` (the threshold, test pairs and calibration images of a run exported again),
`tta` (ShiftAveraged: test-time averaging over shifted copies inside the exported branch,
`export --tta K`), `symmetries` (Symmetric: turns and mirror images embedded side by side
inside it, export.symmetries).
`__main__` is `python -m siamese.export`, an alias of siamese.commands.export.
May import: config, formats, data, models (the architecture registry), scoring, eval
(thresholds, metrics). Nothing below imports export.
"""
