"""Monitoring jobs for on-call: feature/prediction drift, A/B analysis and promotion, showcase health.

- `drift`: PSI / KS against a training baseline saved with the model; prior shift.
- `abtest`: per-variant CTR, CVR, engagement with user-clustered intervals, mSPRT, SRM, guardrails.
- `promotion`: the decision rule and UpdateEndpointWeightsAndCapacities toward a winner.
- `showcase_health`: day-over-day showcase comparison from Redis snapshots.
- `metrics`: the catalogue of CloudWatch metric names and the publishers.

See README.md here and docs/monitoring.md.
"""
