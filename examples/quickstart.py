"""Compress one context with a text method, a KV-cache method, and (if given) a learned compressor
checkpoint and a gist model, then answer a question from each and print the answers and kept sizes; the
KV-cache method's compressed context is also read by `model.generate` with settings of our own.

    python examples/quickstart.py
    python examples/quickstart.py --checkpoint runs/compressors/gist_kv-M32/checkpoint --gist runs/gist/gist
"""

import argparse

from compressions import load_compressor

CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. The basin encompasses seven "
    "million square kilometres, of which five and a half million are covered by the rainforest. The region "
    "includes territory belonging to nine nations; the majority of the forest is contained within Brazil, "
    "with 60% of the rainforest, followed by Peru with 13% and Colombia with 10%."
)
QUESTION = "Which country contains the majority of the Amazon rainforest?"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="any Hugging Face id or local dir (default: the embedded SmolLM2)")
    parser.add_argument("--budget", type=int, default=24, help="M, context tokens (or KV entries) kept")
    parser.add_argument("--checkpoint", help="a learned compressor checkpoint (compressions train compressor)")
    parser.add_argument("--gist", help="a gist model folder (compressions gist train)")
    args = parser.parse_args(argv)

    model = args.model
    for name in ("extractive", "snapkv"):
        compressor = load_compressor(name, budget=args.budget, model=model)
        model = compressor.model  # loaded once, reused by the next method
        kept = compressor.compress(CONTEXT, QUESTION)  # compressed once, then read
        print(f"{name:>12}: kept {kept.n_tokens} of the context's tokens -> {compressor.answer(kept, QUESTION)!r}")
    # model.generate with your own settings: generate_inputs gives its arguments (for snapkv, a transformers
    # DynamicCache of the kept entries and the positions the question continues at)
    inputs = compressor.generate_inputs(kept, QUESTION)
    out = compressor.model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=compressor.tokenizer.pad_token_id)
    print(f"{'generate':>12}: {compressor.tokenizer.decode(out[0, inputs['input_ids'].shape[1] :])!r}")
    if args.checkpoint:
        compressor = load_compressor(args.checkpoint)
        kept = compressor.compress(CONTEXT, QUESTION)
        print(f"{'learned':>12}: {kept.text} -> {compressor.answer(CONTEXT, QUESTION)!r}")
    if args.gist:  # a gist model compresses an instruction; the question is its input
        compressor = load_compressor(args.gist)
        cache = compressor.compress("Answer the question about this text: " + CONTEXT)
        print(f"{'gist':>12}: {cache.kept} gist tokens -> {compressor.answer('Answer the question about this text: ' + CONTEXT, QUESTION)!r}")


if __name__ == "__main__":
    main()
