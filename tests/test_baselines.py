import copy
import sys
import time

import pytest
import torch
from conftest import saved_probe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peft import LoraConfig
from transformers import BartConfig, BartForConditionalGeneration, LlamaForCausalLM

from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.errors import CompressionsError
from compressions.methods import METHODS, Target, build_method, takes_budget
from compressions.methods.llmlingua_local import LegacyCacheLM
from compressions.methods.rankers import EmbeddingRanker, TfidfRanker
from compressions.methods.sentences import split_sentences
from compressions.training.lora import add_adapter

BUDGETED = sorted(name for name in METHODS if takes_budget(name))
WORDS = ["Paris", "river", "the", "born", "1944", "kept", "a", "cat", "Vielika", "über", "—", "town", "e.g."]
sentence = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(lambda ws: " ".join(ws) + ".")
contexts = st.one_of(
    st.lists(sentence, min_size=1, max_size=12).map(" ".join),
    st.text(min_size=1, max_size=300).filter(str.strip),
)


@pytest.fixture(scope="module")
def methods(tiny, tmp_path_factory):
    model, tokenizer = tiny
    options = {name: {} for name in BUDGETED}  # the learned selection needs a probe: a random one over layer 1
    options["selector"] = {"checkpoint": saved_probe(tmp_path_factory.mktemp("probe"), torch.randn(model.config.hidden_size), [1])}
    built = {name: build_method(name, tokenizer, 1, target_model=model, **options[name]) for name in BUDGETED}
    built["perplexity-token"] = build_method("perplexity", tokenizer, 1, target_model=model, unit="token")
    return built


@pytest.fixture(scope="module")
def target(tiny):
    """What a method is given when it compresses (KV-cache methods read the prompt with the model)."""
    model, tokenizer = tiny
    return Target(model, SquadPrompt(tokenizer, SquadPromptConfig(shots=0)))


@pytest.mark.parametrize("name", [*BUDGETED, "perplexity-token"])
def test_budget_is_never_exceeded_and_short_contexts_stay_whole(methods, target, tiny, name):
    tokenizer = tiny[1]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(context=contexts, question=st.sampled_from(["Where was Vielika born?", "What?"]), budget=st.integers(1, 80))
    def check(context, question, budget):
        ids = tokenizer(context, add_special_tokens=False).input_ids
        compressed = methods[name].compress(context, question, budget, target)
        assert compressed.n_tokens <= budget
        assert compressed.seconds >= 0
        if len(ids) <= budget:
            assert compressed.token_ids == ids

    check()


def _long_context(n_sentences=30):
    return " ".join(f"Sentence {i} tells that item {i} weighs {i * 7} grams." for i in range(n_sentences))


def test_prefix_and_suffix_keep_exactly_the_ends(tiny):
    tokenizer = tiny[1]
    context = _long_context()
    ids = tokenizer(context, add_special_tokens=False).input_ids
    for budget in (1, 7, 50):
        assert build_method("prefix", tokenizer, budget).compress(context, "q", budget).token_ids == ids[:budget]
        assert build_method("suffix", tokenizer, budget).compress(context, "q", budget).token_ids == ids[-budget:]
    text = build_method("prefix", tokenizer, 5).compress(context, "q", 5).text
    assert text == tokenizer.decode(ids[:5]) and context.startswith(text)


def _is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def test_random_is_seeded_per_example_and_keeps_order(tiny):
    tokenizer = tiny[1]
    context, other = _long_context(), _long_context(20)
    ids = tokenizer(context, add_special_tokens=False).input_ids
    first = build_method("random", tokenizer, 40).compress(context, "q", 40).token_ids
    fresh = build_method("random", tokenizer, 40)
    fresh.compress(other, "another question", 40)  # what ran before must not matter
    assert fresh.compress(context, "q", 40).token_ids == first
    assert build_method("random", tokenizer, 40, seed=1).compress(context, "q", 40).token_ids != first
    assert build_method("random", tokenizer, 40).compress(context, "q2", 40).token_ids != first
    assert len(first) == 40 and _is_subsequence(first, ids) and first not in (ids[:40], ids[-40:])


def test_sentence_split_keeps_every_character():
    text = 'It cost 5.5 million. Then it rose! "Why?" she asked. e.g. this stays. 1990 came (late). End'
    pieces = split_sentences(text)
    assert "".join(pieces) == text
    assert [p.strip() for p in pieces] == [
        "It cost 5.5 million.",
        "Then it rose!",
        '"Why?" she asked. e.g. this stays.',
        "1990 came (late).",
        "End",
    ]


RANKING_CASES = [
    (
        "In which year was the bridge over the river opened?",
        "The town has a market every week. The bridge over the river was opened in 1887. Its mayor is elected.",
        "The bridge over the river was opened in 1887.",
    ),
    (
        "What colour is the lighthouse?",
        "The harbour is deep. Fishing boats leave at dawn. The lighthouse is painted red and white. Tourists come in summer.",
        "The lighthouse is painted red and white.",
    ),
    (
        "Who wrote the novel about the whale?",
        "Herman Melville wrote the novel Moby-Dick about a white whale. The book sold poorly at first. Critics later praised it.",
        "Herman Melville wrote the novel Moby-Dick about a white whale.",
    ),
]


@pytest.mark.parametrize("ranker", ["tfidf", "embedding"])
@pytest.mark.parametrize("question, context, answer_sentence", RANKING_CASES)
def test_rankers_prefer_the_sentence_holding_the_answer(tiny, ranker, question, context, answer_sentence):
    tokenizer = tiny[1]
    scorer = TfidfRanker("extractive") if ranker == "tfidf" else EmbeddingRanker("extractive")
    sentences = split_sentences(context)
    scores = scorer.scores(question, [s.strip() for s in sentences])
    best = sentences[int(scores.argmax())]
    assert best.strip() == answer_sentence
    # and the method keeps that sentence when the budget holds just it
    budget = len(tokenizer(best, add_special_tokens=False).input_ids)
    method = build_method("extractive", tokenizer, budget, ranker=ranker)
    assert method.compress(context, question, budget).text.strip() == answer_sentence


def test_extractive_keeps_original_order_and_cuts_the_last(tiny):
    tokenizer = tiny[1]
    question = "How heavy is item 3 and item 1?"
    context = _long_context(5)
    sentences = split_sentences(context)
    pieces = [tokenizer(s, add_special_tokens=False).input_ids for s in sentences]
    budget = len(pieces[3]) + 2
    kept = build_method("extractive", tokenizer, budget).compress(context, question, budget).token_ids
    # item 3 ranks first (whole), then item 1 is cut to the 2 tokens left, and 1 comes before 3
    scores = TfidfRanker("extractive").scores(question, [s.strip() for s in sentences])
    first, second = sorted(range(5), key=lambda i: -scores[i])[:2]
    assert {first, second} == {1, 3}
    expected = {first: pieces[first], second: pieces[second][: budget - len(pieces[first])]}
    assert kept == [t for i in sorted(expected) for t in expected[i]]


def test_perplexity_keeps_the_most_informative_tokens(tiny):
    model, tokenizer = tiny
    context = _long_context(4)
    ids = tokenizer(context, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[tokenizer.bos_token_id, *ids]])).logits[0, :-1]
    information = -logits.log_softmax(-1)[torch.arange(len(ids)), torch.tensor(ids)]  # (T,)
    top = sorted(information.topk(10).indices.tolist())
    kept = build_method("perplexity", tokenizer, 10, target_model=model, unit="token").compress(context, "q", 10)
    assert kept.token_ids == [ids[i] for i in top]


def _summariser_options(tiny, tmp_path, kind: str) -> dict:
    """Abstractive options for a tiny random summariser whose greedy summaries differ by context.
    The `tiny` fixture's weights are too small for that: it repeats the chat template's last newline."""
    model, tokenizer = tiny
    torch.manual_seed(0)
    if kind == "causal":
        config = copy.deepcopy(model.config)
        config.initializer_range = 0.2
        return {"target_model": LlamaForCausalLM(config).eval()}
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, init_std=0.2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=None,
    )  # fmt: skip
    BartForConditionalGeneration(config).save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")
    return {"model": str(tmp_path / "bart")}


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_abstractive_batches_give_the_summaries_of_one_at_a_time(tiny, tmp_path, kind):
    tokenizer = tiny[1]
    options, budget = _summariser_options(tiny, tmp_path, kind), 12
    contexts = ["Vielika was born in Paris."] + [_long_context(n) for n in (1, 2, 3, 5, 8, 13)]  # the first fits
    questions = ["Where was Vielika born?", "What?"] * 3 + ["Who?"]
    single = build_method("abstractive", tokenizer, budget, **options)
    one = [single.compress(c, q, budget) for c, q in zip(contexts, questions)]
    method = build_method("abstractive", tokenizer, budget, **options, batch_size=3)  # padded batches of mixed lengths
    start = time.perf_counter()
    many = method.compress_many(contexts, questions, budget)
    wall = time.perf_counter() - start
    assert [r.token_ids for r in many] == [r.token_ids for r in one]
    assert len({tuple(r.token_ids) for r in one}) >= 4  # summaries differ, so rows mixed up would show
    assert many[0].token_ids == tokenizer(contexts[0], add_special_tokens=False).input_ids
    assert all(0 < r.n_tokens <= budget for r in many)
    assert all(r.seconds > 0 for r in many) and sum(r.seconds for r in many) <= wall


def test_lm_methods_ignore_a_reader_adapter(tiny, tmp_path):
    """Both readers must see the same compressed contexts: compressors run with adapters off."""
    tokenizer = tiny[1]
    base = _summariser_options(tiny, tmp_path, "causal")["target_model"]  # its summaries are not empty
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # random B: the adapter acts
    wrapped = add_adapter(copy.deepcopy(base), lora)
    context = _long_context(6)
    with torch.no_grad():
        assert not torch.allclose(base(torch.tensor([[5, 6, 7]])).logits, wrapped(torch.tensor([[5, 6, 7]])).logits)
    for name in ("perplexity", "llmlingua", "abstractive"):
        expected = build_method(name, tokenizer, 12, target_model=base).compress(context, "q", 12).token_ids
        assert expected and build_method(name, tokenizer, 12, target_model=wrapped).compress(context, "q", 12).token_ids == expected


def test_llmlingua_cache_adapter_matches_a_full_forward(tiny):
    model, _ = tiny
    ids = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79]])
    lm = LegacyCacheLM(model)
    with torch.no_grad():
        first = lm(ids[:, :5], attention_mask=torch.ones(1, 5, dtype=torch.long))
        pairs = [(k[:, :, :4], v[:, :, :4]) for k, v in first.past_key_values]  # sliced as llmlingua does
        rest = lm(ids[:, 4:], attention_mask=torch.ones(1, 8, dtype=torch.long), past_key_values=pairs)
        full = model(ids).logits
    torch.testing.assert_close(rest.logits, full[:, 4:], rtol=1e-4, atol=1e-5)
    assert len(rest.past_key_values) == model.config.num_hidden_layers and rest.past_key_values[0][0].shape[2] == 8


def test_llmlingua_compresses_to_about_the_budget_without_the_question(tiny):
    model, tokenizer = tiny
    context, question = _long_context(20), "Zebra quokka question?"
    method = build_method("llmlingua", tokenizer, 32, target_model=model)
    raw = method.compressor.compress_prompt(
        [context], question=question, target_token=32, iterative_size=len(tokenizer(context).input_ids), concate_question=False
    )["compressed_prompt"]
    # LLMLingua itself lands near the target (the cut to M only trims a few tokens)
    assert 16 <= len(tokenizer(raw, add_special_tokens=False).input_ids) <= 40
    assert "Zebra" not in method.compress(context, question, 32).text


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: build_method("prefix", t, 0), "budget: must be an integer >= 1"),
        (lambda t: build_method("prefix", t, None), "needs a token budget"),
        (lambda t: build_method("prefix", t, 4).compress(" \n", "q", 4), "empty context"),
        (lambda t: build_method("magic", t, 4), "unknown method 'magic'"),
        (lambda t: build_method("random", t, 4, sed=1), "has no option sed (its options: seed)"),
        (lambda t: build_method("extractive", t, 4, ranker="bm25"), "unknown ranker 'bm25'"),
        (lambda t: build_method("perplexity", t, 4), "runs on the target model"),
        (lambda t: build_method("abstractive", t, 4, model="no/such-model-here", prompt="{context}"), "not found"),
    ],
)
def test_bad_input_is_a_clear_error(tiny, call, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CompressionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(tiny[1])


@pytest.mark.parametrize(
    "name, module, extra",
    [("extractive", "sklearn.feature_extraction.text", "baselines"), ("extractive-embedding", "sentence_transformers", "baselines"), ("llmlingua", "llmlingua", "llmlingua")],
)
def test_missing_extra_is_named(tiny, monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(CompressionsError, match=rf"needs the optional package '{module}': pip install 'compressions\[{extra}\]'"):
        build_method(name, tiny[1], 4, target_model=tiny[0])
