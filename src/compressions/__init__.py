"""compressions: prompt and context compression for decoder LLMs."""

__version__ = "0.1.0"
