"""Serving fleets: what one replica sustains, how many replicas a load needs, what they cost, how fast new ones
start, how a fleet follows a day's traffic, and which deployment is cheapest. Pure functions over numbers and
DeploymentPlans; one job per module:

- capacity: Little's law, from SLO-constrained concurrency and request latency to requests/s per replica;
- fleet: replicas for a load with headroom, utilization, GPU-hours;
- pricing: which price applies (catalogue or override) and where it came from;
- cost: $ per hour, per request, per million input/output tokens (split by each phase's GPU time);
- coldstart: weight load + engine start-up, and what it means for scale-up;
- mix: a distribution of request lengths reduced to the figures capacity needs;
- autoscale: replicas per interval of a traffic profile under a policy, vs static peak provisioning;
- pareto: the cost-vs-latency front of candidate deployments;
- launch: the engine command line a plan implies.
"""
