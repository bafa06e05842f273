"""The on-disk contracts: what a run directory, a checkpoint and an export bundle hold.

Lives here: `rundir` (RunDir: every path of a run directory), `checkpoint` (the .ckpt file),
`bundle` (the export folder and model.json), `preprocess` (pixels -> input tensor, as model.json
states it), `pairsets` (the run's pairs/*.csv), `gallery` (the gallery file of enrolled identities),
`atomic` (the one write-then-rename helper).
May import: `siamese.errors`, numpy, mxnet. Everything else reads these; they import nothing
above them.
"""
