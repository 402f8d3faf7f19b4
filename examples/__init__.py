"""Worked examples of a game, a strategy and a learner from outside the package
(docs/EXTENDING.md walks through them; tests/test_extending.py runs them)."""
