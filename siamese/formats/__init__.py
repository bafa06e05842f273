"""The on-disk contracts: what a run directory, a checkpoint, an export bundle, a gallery and a
picture file hold.

Lives here: `rundir` (RunDir: every path of a run directory), `checkpoint` (the .ckpt file),
`optstate` (optimizer state as named arrays, never pickled), `bundle` (the export folder and
model.json), `ndfile` (an MXNet .params file checked before MXNet reads it), `preprocess`
(pixels -> input tensor, as model.json states it), `pairsets` (the run's pairs/*.csv and
digests), `gallery` (the gallery file of enrolled identities), `atomic` (the one write-then-
rename helper), `figures` (every PNG: no display, atomic, never failing a run).
May import: `siamese.errors`, numpy, mxnet. Everything else reads these; they import nothing
above them.
"""
