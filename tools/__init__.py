"""Developer tools (local deployment runner, ...)."""
