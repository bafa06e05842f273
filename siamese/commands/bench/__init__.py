"""The benches: measurements that print figures (never timed assertions in tests).

Lives here: `training` (`siamese bench`: the training step today and before, the fit loop,
inference, against the machine's ceiling), `serving` (float, fused, int8 and ONNX exports;
the mined-triplet step), `search` (`siamese gallery bench`: search over 1,000,000 vectors),
`baselines` (code kept only to be compared with: the step before the fused operators, the
former (N, N, N) triplet miner), `http` (`--only http`: the service under load beside the
offline figures, and `--only http-options`), `loadgen` (its asyncio load generator on
127.0.0.1), `faults` (the fault run: every malformed request mixed with good ones).
May import: anything in the package (it is a command).
"""
