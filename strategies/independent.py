"""Independent learners (IPPO): no federation. Each agent maximises its own return."""

from strategies.base import FederationStrategy


class Independent(FederationStrategy):
    """Nothing is sent besides each agent's own experience; nothing is aggregated."""

    name = "independent"
