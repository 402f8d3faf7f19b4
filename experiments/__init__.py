"""Experiments as data: campaigns (experiments/campaigns/*.toml) and the engine that runs them.

- :mod:`experiments.campaign`: the campaign file's schema, ``load`` and the plan
  (``PlannedRun(scenario, method, seed, cfg)``);
- :mod:`experiments.status`: whether a planned run is done, partial, stale, failed or missing;
- :mod:`experiments.engine`: runs what is missing or partial (``--jobs`` at a time), resuming
  from checkpoints;
- ``python -m experiments run|status|report CAMPAIGN.toml`` (experiments/__main__.py).

The campaigns' own figures and tables are drawn by experiments/figures/ (a campaign's
``[figures] module``); the tools beside them run as modules:
``python -m experiments.inspect_omega RUN_DIR`` (what FPF's ω and ω̄ do, from a run's
checkpoint) and ``python -m experiments.random_levels`` (the games' random-policy levels).
"""
