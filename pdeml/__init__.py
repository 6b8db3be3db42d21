"""pdeml: PDE surrogates end to end — generate, train, evaluate, export."""

__version__ = "0.1.0"
