"""Prompt retries of Flower's object pulls.

Flower 1.42 moves a message as a tree of objects. The receiving end may see the message
before all of its objects have arrived: the SuperNode stores a message, which starts its
ClientApp task, before it has pulled the message's objects from the SuperLink, and the
ServerApp sees a reply before the SuperNode has pushed all of the reply's objects. A pull
of an object that is not there yet is retried after ``PULL_INITIAL_BACKOFF`` = 1 s,
doubling up to 10 s (flwr.supercore.constant), while the object arrives within
milliseconds: a round of small messages waited a whole second now and then.
:func:`prompt_pulls` makes the first retry come after ``INITIAL_BACKOFF`` seconds and
caps the wait at ``BACKOFF_CAP``, in the process that calls it (the ServerApp; the
SuperNode of tools.supernode, which also runs its ClientApp tasks); nothing else of the
pulls changes.
"""

from __future__ import annotations

from flwr.supercore.inflatable import inflatable_utils

INITIAL_BACKOFF = 0.01  # seconds before the first retry of an object not there yet (Flower: 1)
BACKOFF_CAP = 0.5  # the longest wait between two tries (Flower: 10)


def prompt_pulls() -> None:
    """Make this process's object pulls retry after INITIAL_BACKOFF, at most BACKOFF_CAP apart."""
    for pull in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        defaults = pull.__kwdefaults__
        if defaults is None or "initial_backoff" not in defaults or "backoff_cap" not in defaults:
            raise RuntimeError(f"flwr's {pull.__name__} no longer takes initial_backoff and backoff_cap")
        defaults["initial_backoff"], defaults["backoff_cap"] = INITIAL_BACKOFF, BACKOFF_CAP
