"""compressions: prompt and context compression for decoder LLMs.

    from compressions import load_compressor
    print(load_compressor("extractive", budget=32).answer(context, question))
"""

__version__ = "0.1.0"
__all__ = ["Compressor", "GistCompressor", "load_compressor", "__version__"]


def __getattr__(name: str):
    # Loaded on first use: every `compressions.x` import runs this file, and the CLI's help should not
    # wait for torch and transformers.
    if name == "GistCompressor":
        from compressions.gist.compressor import GistCompressor

        return GistCompressor
    if name in __all__:
        from compressions import api

        return getattr(api, name)
    raise AttributeError(f"module 'compressions' has no attribute {name!r}")
