"""Paper-specific figures of the campaigns (a campaign's ``[figures] module``).

Each module defines ``figures(campaign, runs, out) -> list[Path]``: ``campaign`` the loaded
experiments.campaign.Campaign, ``runs`` its finished runs as ``{(scenario, method, seed):
analysis.runs.Run}``, ``out`` the directory to write into; it returns the files written.
Statistics come from analysis/ (analysis.window, analysis.stats, analysis.curves) and
the style from analysis.plots.
"""
