"""What could a question-agnostic KV selection reach on 512-token documents? Two oracles that look at every
question asked about a document (never available at use) and keep one selection for all of them, scored by the
harness as any KV method (same reader, prompt and M):

- `attention`: per layer and KV head, the M context entries with the most SnapKV votes (the question's
  attention, over the query heads of each KV head, pooled over 7 positions) summed over all the document's
  questions, each question's votes normalised to sum to 1: the target of a selector that predicts question
  attention.
- `answers`: the M tokens that overlap the most answers of the document's questions (ties: the earliest), in
  every layer and head: the target of a selector that predicts answer tokens (`compressions train selector`).

    PYTHONPATH=src python benchmarks/selection_oracles.py --oracle answers --budget 32 --limit 200 \
        --out runs/benchmarks/oracle-answers-M32
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from compressions.api import load_compressor
from compressions.compressors.selector import answer_spans, answer_token_labels
from compressions.data.documents import pack_documents
from compressions.data.squad import load_squad
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad
from compressions.methods.snapkv import SnapKV
from compressions.models.generation import copy_cache


class AttentionOracle(SnapKV):
    name = "oracle-attention"
    question_aware = False  # one selection per document, shared by its questions

    def __init__(self, tokenizer, questions: dict[str, list[str]]):
        super().__init__(tokenizer)
        self.questions = questions

    def _compress(self, context, question, budget, target):
        self.context, self.target = context, target
        return super()._compress(context, question, budget, target)

    def split(self, ids, after):
        return ids, [0]  # a non-empty window: `window_attention` reads each question's own

    def window_attention(self, model, cache, window, start, context):
        """(L, heads, 1, C): each question's votes, normalised, summed over the document's questions; each
        question is read on a copy of the context's cache, so none sees another."""
        read = [(layer.keys[:, :, :start].clone(), layer.values[:, :, :start].clone()) for layer in cache.layers]
        total = 0
        for question in self.questions[self.context]:
            _, after = self.target.prompt.ids(question)
            votes = self._attention(model, copy_cache(model, read, 1), after, start)[..., context].sum(dim=2, keepdim=True)
            total = total + votes / votes.sum(dim=-1, keepdim=True)
        return total


class AnswerOracle(SnapKV):
    name = "oracle-answers"
    question_aware = False

    def __init__(self, tokenizer, spans: dict[str, list[tuple[int, int]]]):
        super().__init__(tokenizer)
        self.spans = spans

    def _compress(self, context, question, budget, target):
        offsets = self.tokenizer(context, add_special_tokens=False, return_offsets_mapping=True).offset_mapping
        counts = torch.zeros(len(offsets))
        for span in self.spans[context]:
            counts += answer_token_labels(offsets, [span])
        self.score = counts - 1e-6 * torch.arange(len(offsets))  # ties: the earliest
        return super()._compress(context, question, budget, target)

    def scores(self, keys, attention):
        return self.score.expand(*keys.shape[:2], -1)


def main(args: argparse.Namespace) -> dict:
    config = SquadEvalConfig(method="snapkv", budget=args.budget, documents=args.documents, limit=args.limit, out=args.out)
    compressor = load_compressor("snapkv", args.budget)
    validation = load_squad(config.data, config.split, config.data_dir, config.on_error, config.train_articles)
    documents = pack_documents(validation, compressor.tokenizer, args.documents)[0]
    questions = {}
    for e in documents:
        questions.setdefault(e.context, []).append(e.question)
    spans = answer_spans(documents)
    oracle = AttentionOracle(compressor.tokenizer, questions) if args.oracle == "attention" else AnswerOracle(compressor.tokenizer, spans)
    return evaluate_squad(config, compressor=dataclasses.replace(compressor, method=oracle, name=oracle.name))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", choices=("attention", "answers"), required=True)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--documents", type=int, default=512)
    parser.add_argument("--limit", type=int, default=200, help="the first N questions of the documents")
    parser.add_argument("--out", required=True, help="the run folder (scores.json, metrics.json)")
    metrics = main(parser.parse_args())
    print(f"{metrics['method']}: F1 {metrics['f1']:.1f} EM {metrics['exact_match']:.1f} on {metrics['n']} questions")
