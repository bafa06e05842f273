"""Training: build a run's parts from the config (engine), the step, the trainer, the fit loop
with checkpoints and resume, schedules, devices, the distributed kvstore and signals.

Lives here: `pairing` (which batches go with which loss), `engine` (Parts), `step`, `trainer`,
`validation`, `state` (the loop's position and the non-finite policies), `fit`, `resume`,
`rebuild` (a run's network back from a checkpoint), `schedule`, `device`, `distributed`,
`signals`.
May import: config, formats, data, models, losses, and eval (to validate). Never export: the
command lines run the fit loop, then the export (siamese.commands.pipeline).
"""
