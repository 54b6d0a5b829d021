"""ai-ready: measure today's GPU nodes and extrapolate training jobs to tomorrow's machines."""

__version__ = "0.1.0"
