"""The comparison of a sweep's jobs: `jobs` reads and groups them, `verdicts` tests them (`evaluation.statistics`),
`markdown`, `tables` and `figures` write comparison.md, the CSV files and the figures, `report` puts them together,
and `callback` is the Hydra callback that calls it when a multirun ends.

Nothing is imported here so that loading the callback stays cheap.
"""
