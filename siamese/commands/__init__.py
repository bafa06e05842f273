"""The commands: every user-facing tool, each a thin module that parses its arguments, calls
the rooms below and exits with a status (0 done, 2 bad input, 1 could not finish, 130/143
interrupted).

Lives here: `main` (the `siamese TOOL ...` console command), `train` (train.py), `eval`
(eval.py), `export`, `predict`, `gallery`, `pack`, `launch`, `serve` (the HTTP service,
siamese.service), `bench/` (the benches: training
step, serving, search), `pipeline` (what `train` runs: fit, threshold, test, export),
`common` (logging handlers, exit codes, shared argument types). `python -m siamese.<tool>`
keeps working through one-line aliases at the package root.
May import: anything in the package. Nothing imports commands.
"""
