"""What `kvcalc verify` computes from a measurement (pure: the raw record and the DeploymentPlan come in,
nothing is read or timed here; bench/ measures, report/verify.py turns these results into records).

- layout: layer signatures and the extrapolation of K measured layers to the whole model;
- traffic: where the torch harness's work differs from an engine's (its own MoE, MLA and block-local bytes);
- steps: the whole-model steps a record measured and the perf model's prediction of each;
- calibration: the prior a single model's fit starts from and the coefficients a calibration file carries;
- comm: collectives against the perf model's communication terms, and their latency + bandwidth fit.
"""
