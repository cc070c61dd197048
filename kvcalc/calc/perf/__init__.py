"""Latency and throughput of a DeploymentPlan: prefill, decode, batching under SLOs."""
