"""Analysis of finished runs: final values, aggregates over seeds, paired comparisons,
tables and plots. Pure data (numpy, scipy, rliable, matplotlib): it imports no game,
agent, strategy or federation code, nor torch or Flower, so it reads run directories
written anywhere.

- :mod:`analysis.runs`: a run directory as data (config, per-round rows, summary).
- :mod:`analysis.window`: a run's final value, the mean of a metric over a window of rounds.
- :mod:`analysis.stats`: statistics over seeds (mean/sd/t-CI, rliable's IQM and
  probability of improvement with stratified bootstrap CIs, paired differences).
- :mod:`analysis.curves`: learning curves averaged over seeds.
- :mod:`analysis.tables`: Markdown/CSV tables of those.
- :mod:`analysis.plots`: the plots (learning curves, IQM intervals, paired differences).
"""
