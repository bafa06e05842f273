"""Training: build a run's parts from the config (engine), the step, the trainer, the fit loop
with checkpoints and resume, schedules, devices, the distributed kvstore and signals.

Lives here: `pairing` (which batches go with which loss), `engine` (Parts, built whole), `step`
(TrainStep), `trainer`, `validation`, `select` (train.select: which epoch is kept), `state`
(the loop's position and the non-finite policies), `fit`, `resume`, `rebuild` (a run's network
back from a checkpoint), `schedule`, `device`, `distributed`, `collective` (decisions all
workers take together), `signals`, `board` (TensorBoard), `curves` (curves.png of the log).
May import: config, formats, data, models, losses, scoring, and eval (thresholds). Never
export: the train command runs the fit loop, then the export (siamese.commands.pipeline).
"""
