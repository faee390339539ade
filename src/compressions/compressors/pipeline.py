"""A compressor and the frozen LLM that reads its soft tokens.

The decoder is the LLM itself, or the SQuAD reader (`reader`: its LoRA adapter merged into the weights,
so learned methods are read by the same decoder as the text rows beside them). One LoRA adapter can be
added: the decoder's (`use_lora`: the LLM reads soft tokens with it), the encoder's (`encoder_lora`:
on only while a `reads_llm` compressor runs the LLM over the context), or both at once: one adapter that
encodes and decodes, as the Gist paper trains one model for both; or, with `separate_adapters`, two: one
compresses and one answers (GistPool's and CCM's separate parameters). The teacher is always the decoder
without an adapter, reading the full text.

The LLM sees exactly the SQuAD harness's prompt (data/prompts.py) with the context slot holding
`M soft tokens [+ separator]` instead of the context's tokens:
`prefix ids + slot + suffix ids [+ answer ids + EOS when training]`.
The same `slot_ids` / `prompt_ids` serve training and evaluation, so the two cannot drift apart.
A compressor that makes a cache (`gist_kv`) fills no slot: the decoder holds its own cache of the prefix,
then the gists' K/V entries, and reads `suffix ids [+ answer ids + EOS]` after them.

Checkpoint folder (`save_pretrained`): `compressor.safetensors`, `pipeline_config.json` (this config),
`compressor_config.json` (arch, its full config, parameter count, package version), `shots.json` (the
prompt's solved examples) and `adapter/`
(peft) when LoRA is on, the compressing adapter of `separate_adapters` in `adapter/encoder/`. The reader is recorded by path and merged again on loading.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch
from peft import load_peft_weights, set_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from compressions.compressors import SoftCompressor, build_compressor, compressor_class, losses
from compressions.compressors.encoder import prefix_positions
from compressions.compressors.gist_kv import GistEntries, window_ends
from compressions.config import load_config
from compressions.data.prompts import SquadPrompt, SquadPromptConfig, solved_examples
from compressions.data.squad import SquadExample
from compressions.errors import ConfigError
from compressions.methods import METHODS, build_method, takes_budget
from compressions.models import DEFAULT_MODEL, load_model
from compressions.models.generation import left_pad, position_ids, prefill
from compressions.models.loading import not_llama_style
from compressions.models.soft_prompts import embed_with_slots, slot_mask
from compressions.reader.adapter import reader_prompt, with_reader
from compressions.store.run_folder import atomic_write_json
from compressions.store.saved import COMPRESSOR_CONFIG, PIPELINE_CONFIG, read_saved
from compressions.training.lora import LoraSettings, add_adapter, load_adapter, quiet_peft

# what selected_residual can start from: the text methods that keep at most M of the context's tokens
SELECTIONS = sorted(n for n in METHODS if takes_budget(n) and getattr(getattr(METHODS[n].load(), "func", METHODS[n].load()), "output") == "text")
WEIGHTS_FILE, ADAPTER_DIR, SHOTS_FILE = "compressor.safetensors", "adapter", "shots.json"
RECONSTRUCTION_CUE = "\nRepeat the last part of the text:\n"  # reconstruction_ce's request before a window's tokens
ENCODER_ADAPTER = "encoder"  # with separate_adapters; the decoder's is peft's "default" (saved in adapter/encoder/)


@dataclass
class PipelineConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "the LLM that reads the soft tokens"})
    arch: str = field(default="cross_attention", metadata={"help": "a name of compressions.compressors.ARCHITECTURES"})
    budget: int = field(default=32, metadata={"help": "M, soft tokens per context"})
    compressor: dict = field(default_factory=dict, metadata={"help": "arch options (hidden_size, heads, ...)"})
    input_layer: int = field(default=0, metadata={"help": "0: LLM input embeddings; k: hidden states after layer k"})
    max_context_tokens: int = field(default=512, metadata={"help": "contexts are cut to this many tokens"})
    separator: str = field(default="", metadata={"help": "after the soft tokens, in the slot: '' | 'bos' | any text"})
    use_lora: bool = field(default=False, metadata={"help": "the decoder reads soft tokens with the LoRA adapter `lora`"})
    encoder_lora: bool = field(
        default=False, metadata={"help": "the LLM encodes contexts with the LoRA adapter `lora` (with use_lora: the same one)"}
    )
    reader: str | None = field(default=None, metadata={"help": "SQuAD reader adapter folder: the frozen decoder"})
    question_aware: bool = field(
        default=False, metadata={"help": "the compressor also reads the prompt's text after the context (the question)"}
    )
    selection: str = field(
        default="prefix",
        metadata={"help": "selected_residual's start: the M tokens this text method keeps (prefix, extractive, ...)"},
    )
    separate_adapters: bool = field(
        default=False,
        metadata={"help": "with use_lora and encoder_lora: two adapters, one compresses and one answers (GistPool, CCM), not one for both"},
    )
    questions_per_context: int = field(
        default=1,
        metadata={"help": "training: each context in a batch is compressed once for up to this many of its questions (question-agnostic pipelines)"},
    )
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    # Zero-shot, as the SQuAD reader: training teaches the answer format, and solved examples would
    # cost every step ~140 more tokens (the reader's prompt, so the two read the same text around the slot).
    prompt: SquadPromptConfig = field(default_factory=lambda: SquadPromptConfig(shots=0))

    def validate(self) -> None:
        compressor_class(self.arch)
        self.prompt.validate()
        if self.budget < 1:
            raise ConfigError(f"budget must be >= 1, got {self.budget}")
        if self.input_layer < 0 or self.max_context_tokens < 1:
            raise ConfigError("input_layer must be >= 0, max_context_tokens >= 1")
        if compressor_class(self.arch).makes_cache and self.separator:
            raise ConfigError(f"arch {self.arch!r} hands the decoder a cache: the slot has no separator (got {self.separator!r})")
        if self.separate_adapters and not (self.use_lora and self.encoder_lora):
            raise ConfigError("separate_adapters: needs both use_lora (the answering adapter) and encoder_lora (the compressing one)")
        if self.encoder_lora and not compressor_class(self.arch).reads_llm:
            raise ConfigError(f"encoder_lora: arch {self.arch!r} does not run the LLM as its encoder")
        if self.selection != "prefix" and not compressor_class(self.arch).reads_selection:
            raise ConfigError(f"selection {self.selection!r}: arch {self.arch!r} starts from no selection")
        reads_question = self.question_aware or (compressor_class(self.arch).reads_selection and self.selection != "prefix")
        if self.questions_per_context < 1 or (self.questions_per_context > 1 and reads_question):
            raise ConfigError(
                f"questions_per_context must be >= 1, and 1 when the compressor reads the question (question_aware or a selection other than prefix); got {self.questions_per_context}"
            )
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be a budgeted text method ({', '.join(SELECTIONS)}), got {self.selection!r}")
        self.lora.validate()


class SoftPromptModel(nn.Module):
    """Holds the compressor and the LLM; `create` builds a fresh one, `from_pretrained` a saved one."""

    def __init__(
        self, config: PipelineConfig, llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, compressor: SoftCompressor, shots=()
    ):
        super().__init__()
        config.validate()
        # the prompt's solved examples (the train split's, as the harness picks them; else the shipped ones):
        # every prompt this pipeline builds holds them, its decoder's prefix cache and its encoder's input included
        self.shots: tuple[SquadExample, ...] = tuple(shots) or tuple(solved_examples(config.prompt.shots))
        if len(self.shots) != config.prompt.shots:
            raise ConfigError(f"prompt.shots={config.prompt.shots}, but {len(self.shots)} solved examples were given")
        if config.input_layer > llm.config.num_hidden_layers:
            raise ConfigError(f"input_layer {config.input_layer} > the LLM's {llm.config.num_hidden_layers} layers")
        if compressor.config.num_tokens != config.budget:
            raise ConfigError(f"compressor makes {compressor.config.num_tokens} tokens, budget is {config.budget}")
        self.config, self.tokenizer, self.llm, self.compressor = config, tokenizer, llm, compressor
        self._prefix_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.selector = None
        if compressor.reads_selection and config.selection != "prefix":
            self.selector = build_method(config.selection, tokenizer, config.budget)
            if self.selector.question_aware and not config.question_aware:
                raise ConfigError(f"selection {config.selection!r} reads the question: set pipeline.question_aware=true")

    @classmethod
    def create(cls, config: PipelineConfig, llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, shots=()) -> SoftPromptModel:
        """A new compressor for `llm`, which is frozen (the reader merged in, then wrapped in a new LoRA
        adapter if configured)."""
        config.validate()
        trained = reader_prompt(config.reader) if config.reader else None
        if trained is not None and trained != dataclasses.asdict(config.prompt):
            raise ConfigError(f"reader {config.reader} was trained with prompt {trained}, not pipeline.prompt {dataclasses.asdict(config.prompt)}")
        llm = with_reader(llm, config.reader)
        llm.requires_grad_(False)
        if config.use_lora or config.encoder_lora:
            llm = add_adapter(llm, config.lora.peft_config())
            if config.separate_adapters:
                with quiet_peft():
                    llm.add_adapter(ENCODER_ADAPTER, config.lora.peft_config())
                llm.requires_grad_(False)
                for name, p in llm.named_parameters():
                    p.requires_grad_("lora_" in name)
        embedding = llm.get_input_embeddings().weight
        compressor = build_compressor(
            config.arch,
            num_tokens=config.budget,
            input_size=embedding.shape[1],
            output_norm=embedding.detach().float().norm(dim=-1).mean().item(),
            **config.compressor,
        ).to(device=embedding.device)
        return cls(config, llm, tokenizer, compressor, shots)

    # --- the prompt layout, shared by training and evaluation ---
    def slot_ids(self) -> list[int]:
        """Token ids of the context slot: M placeholders (their embeddings get replaced), then the separator."""
        separator = self.config.separator
        if separator == "bos":
            if self.tokenizer.bos_token_id is None:
                raise ConfigError("separator 'bos': the tokenizer has no BOS token")
            tail = [self.tokenizer.bos_token_id]
        else:
            tail = self.tokenizer(separator, add_special_tokens=False).input_ids if separator else []
        return [self.tokenizer.pad_token_id] * self.config.budget + tail

    def squad_prompt(self, shots=None) -> SquadPrompt:
        """The prompt layout this pipeline trains and is evaluated with (the harness's, data/prompts.py), with
        its own solved examples unless others are given."""
        return SquadPrompt(self.tokenizer, self.config.prompt, tuple(self.shots if shots is None else shots))

    def prompt_ids(self, question: str, shots=None) -> tuple[list[int], list[int]]:
        """(prefix ids, suffix ids) around the slot, tokenised exactly as the harness does."""
        return self.squad_prompt(shots).ids(question)

    def answer_ids(self, answer: str) -> list[int]:
        """Answer tokens then EOS, by the rule the reader is trained with."""
        return self.squad_prompt().answer_ids(answer)

    def prefix_ids(self) -> list[int]:
        """The prompt's ids before the context slot (the same for every question)."""
        return self.prompt_ids("?")[0]

    def context_ids(self, context: str) -> list[int]:
        return self.tokenizer(context, add_special_tokens=False).input_ids[: self.config.max_context_tokens]

    def compressor_ids(self, context: str, question: str) -> list[int]:
        """What the compressor reads: the context, then with `question_aware` the prompt's text after it
        (question and answer anchor), so that what it makes serves that one question."""
        selected = self.selector.compress(context, question, self.config.budget).token_ids if self.selector else None
        return self.compressor_input(self.context_ids(context), self.prompt_ids(question)[1], selected)

    def compressor_input(self, context_ids: list[int], after_ids: list[int], selected: list[int] | None = None) -> list[int]:
        """`compressor_ids` from ids: the context, then with `question_aware` the ids read after the slot.
        A compressor that starts from a selection reads its M selected ids first (`selected`, by default the
        first M context ids, what `prefix` keeps; fewer are stretched to M by repeating, evenly spread)."""
        read = context_ids + after_ids if self.config.question_aware else context_ids
        if not self.compressor.reads_selection:
            return read
        if selected is None:
            if self.selector is not None:
                raise ConfigError(f"selection {self.config.selection!r} needs the context's text and question")
            selected = context_ids[: self.config.budget]
        picked = prefix_positions(torch.tensor([len(selected)]), self.config.budget)[0].tolist()
        return [selected[i] for i in picked] + read

    # --- tensors ---
    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def base_llm(self):
        """Context in which the LLM runs without its adapter (the frozen decoder itself)."""
        return self.llm.disable_adapter() if self.config.use_lora or self.config.encoder_lora else contextlib.nullcontext()

    def decoding(self):
        """Context of the decoder's forwards: the adapter is off when it is the encoder's alone."""
        encoder_only = self.config.encoder_lora and not self.config.use_lora
        return self.llm.disable_adapter() if encoder_only else contextlib.nullcontext()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def hidden(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, d) last (normed) hidden states of the LLM as encoder: with the encoder adapter, if any."""
        return self._encode(embeds, mask, use_cache=False).last_hidden_state

    def encode_cache(self, embeds: torch.Tensor, mask: torch.Tensor, all_layers: bool = False) -> tuple[DynamicCache, torch.Tensor | tuple[torch.Tensor, ...]]:
        """The encoder's KV cache of the inputs and its last hidden states (B, T, d); with `all_layers`, every
        layer's hidden states instead (the embeddings first, as `output_hidden_states` gives them)."""
        out = self._encode(embeds, mask, use_cache=True, output_hidden_states=all_layers)
        return out.cache, out.hidden_states if all_layers else out.last_hidden_state

    def layer_entries(self, layer: int, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values (B, n_kv, M, head_dim) the encoder's decoder layer `layer` makes of hidden
        states (B, M, d) read at `positions` (B, M): its input norm, key and value projections (with the
        encoder adapter, if any) and rotary embedding, as its own forward computes them (Llama-style attention)."""
        decoder = self.llm.get_decoder()
        block = decoder.layers[layer]
        attention = block.self_attn
        if reason := not_llama_style(decoder):
            raise ConfigError(f"compressor.shift needs Llama-style attention: {reason}")
        context = self._encoder_adapter() if self.config.encoder_lora else self.base_llm()
        with context:
            x = block.input_layernorm(hidden)
            shape = (*hidden.shape[:2], -1, attention.head_dim)
            keys = attention.k_proj(x).view(shape).transpose(1, 2)
            values = attention.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = decoder.rotary_emb(values, positions)
        return apply_rotary_pos_emb(keys, keys, cos, sin)[0], values

    @torch.no_grad()
    def frozen_states(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every layer's hidden states of the frozen LLM (no adapter) over the inputs: what a fixed scorer reads."""
        if not self.config.encoder_lora:  # the encoder is the frozen LLM: its own forward serves
            return ()
        with self.base_llm():
            return self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=position_ids(mask), output_hidden_states=True).hidden_states

    @contextlib.contextmanager
    def _encoder_adapter(self):
        """The compressing adapter active (with separate_adapters), the answering one again after."""
        if not self.config.separate_adapters:
            yield
            return
        trainable = [p for p in self.llm.parameters() if p.requires_grad]
        try:
            self.llm.set_adapter(ENCODER_ADAPTER)
            for p in trainable:  # peft freezes the inactive adapter, and a frozen weight's gradient is dropped
                p.requires_grad_(True)
            yield
        finally:
            self.llm.set_adapter("default")
            for p in trainable:
                p.requires_grad_(True)

    def _encode(self, embeds: torch.Tensor, mask: torch.Tensor, use_cache: bool, **options):
        context = self._encoder_adapter() if self.config.encoder_lora else self.base_llm()
        with context:
            decoder = self.llm.get_decoder()
            return decoder(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=position_ids(mask), use_cache=use_cache, **options)

    def decoder_prefix(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The decoder's own cache of the prompt prefix, per layer [1, n_kv, P, head_dim]. Made once when the
        decoder is frozen; with a decoder adapter made at every call, as the adapter changes while it trains
        (and its gradient flows through the prefix's entries)."""
        if self.config.use_lora:
            return prefill(self.llm, self.prefix_ids())
        if self._prefix_cache is None:
            with self.decoding():
                self._prefix_cache = prefill(self.llm, self.prefix_ids())
        return self._prefix_cache

    def context_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, d_llm) what the compressor reads: input embeddings, or frozen hidden states of a layer."""
        if self.config.input_layer == 0:
            return self.llm.get_input_embeddings()(ids)
        with torch.no_grad(), self.base_llm():
            out = self.llm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[self.config.input_layer]

    def compress(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded context ids (B, N) -> (soft tokens (B, M, d), the context's features (B, N, d)).
        A compressor that makes a cache gives its gists' last hidden states as the (diagnostic) soft tokens."""
        if self.compressor.makes_cache:
            return self.compressor(self, ids, mask.bool()).hidden, self.embed(ids).detach()
        if self.compressor.reads_llm:
            return self.compressor(self, ids, mask.bool()), self.embed(ids).detach()
        features = self.context_features(ids, mask)
        return self.compressor(features, mask.bool()), features

    def answer_logits(
        self, soft: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, slot_mask: torch.Tensor, answer_width: int
    ) -> torch.Tensor:
        """(B, A, V) logits at the positions that predict the last A (right-aligned answer) tokens."""
        embeds = embed_with_slots(self.llm, input_ids, slot_mask, soft)
        with self.decoding():
            return self._last_logits(answer_width, inputs_embeds=embeds, attention_mask=attention_mask)

    def cache_answer_logits(
        self, gist: GistEntries, input_ids: torch.Tensor, attention_mask: torch.Tensor, slot_mask: torch.Tensor, answer_width: int
    ) -> torch.Tensor:
        """(B, A, V) answer logits of the decoder holding the prompt prefix's cache and the gists' entries and
        reading what follows the slot of the (left-padded) student prompts."""
        after = (slot_mask.cumsum(1) > 0) & ~slot_mask & attention_mask.bool()  # (B, T): the text after the slot
        first = int(after.float().argmax(1).min())  # drop the columns that are before the slot in every row
        ids, after = input_ids[:, first:], after[:, first:].long()
        cache, b = DynamicCache(config=self.llm.config), len(ids)
        for layer, (keys, values) in enumerate(self.decoder_prefix()):
            cache.update(
                torch.cat([keys.expand(b, -1, -1, -1), gist.keys[layer]], dim=2),
                torch.cat([values.expand(b, -1, -1, -1), gist.values[layer]], dim=2),
                layer,
            )
        kept = after.new_ones(b, gist.positions.shape[1]) if gist.mask is None else gist.mask.to(after)
        mask = torch.cat([after.new_ones(b, cache.get_seq_length() - kept.shape[1]), kept, after], dim=1)
        positions = (position_ids(after) + gist.next_positions[:, None]) * after
        with self.decoding():
            out = self.llm(
                input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, logits_to_keep=answer_width + 1
            )
        return out.logits[:, :-1]

    @torch.no_grad()
    def teacher_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, answer_width: int) -> torch.Tensor:
        """The frozen LLM reading the full text context: (B, A, V) at the same answer positions."""
        with self.base_llm():
            return self._last_logits(answer_width, input_ids=input_ids, attention_mask=attention_mask)

    @torch.no_grad()
    def context_teacher_logits(self, batch: dict) -> torch.Tensor:
        """`teacher_logits` of a multi-question batch (batches.collate_questions) with each context read once:
        the frozen LLM's cache of the prompt prefix and the whole context, then every question's text after it,
        at the positions the full prompt gives it. Only for a frozen decoder (whose prefix cache is the LLM's)."""
        if self.config.use_lora:
            raise ConfigError("context_teacher_logits: the decoder wears an adapter, so its prefix cache is not the teacher's")
        ids, mask = batch["teacher_context_ids"].to(self.device), batch["teacher_context_mask"].to(self.device)
        (g, n), prefix = ids.shape, self.decoder_prefix()
        p = prefix[0][0].shape[2]
        cache = DynamicCache(config=self.llm.config)
        for layer, (keys, values) in enumerate(prefix):
            cache.update(keys.expand(g, -1, -1, -1), values.expand(g, -1, -1, -1), layer)
        positions = torch.arange(p, p + n, device=ids.device).expand(g, -1)
        with self.base_llm():
            self.llm(input_ids=ids, attention_mask=torch.cat([mask.new_ones(g, p), mask], 1).long(), position_ids=positions, cache=cache, logits_to_keep=1)
        context = GistEntries(
            [layer.keys[:, :, p:] for layer in cache.layers], [layer.values[:, :, p:] for layer in cache.layers], positions, None, mask, p + mask.sum(1)
        )  # fmt: skip
        # read through `decoding()`: with no decoder adapter, the frozen LLM
        return self.cache_answer_logits(
            context.rows(batch["context_index"]), batch["input_ids"], batch["attention_mask"], batch["slot_mask"], batch["labels"].shape[1]
        )  # fmt: skip

    def _last_logits(self, answer_width: int, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        positions = position_ids(attention_mask)
        out = self.llm(**inputs, attention_mask=attention_mask, position_ids=positions, logits_to_keep=answer_width + 1)
        return out.logits[:, :-1]

    def forward(self, batch: dict, input_ids: torch.Tensor | None = None) -> dict:
        """Soft tokens and answer logits for a collated batch (input_ids overrides the batch's, e.g. mixed answers)."""
        ids = batch["input_ids"] if input_ids is None else input_ids
        inputs = (ids, batch["attention_mask"], batch["slot_mask"], batch["labels"].shape[1])
        # a multi-question batch (batches.collate_questions) compresses each context once: its rows are
        # spread to the questions by `context_index`, so their gradients add up in the one compression
        row = batch.get("context_index")
        spread = (lambda t: t) if row is None else (lambda t: t.index_select(0, row.to(t.device)))
        context_mask = spread(batch["context_mask"])
        if self.compressor.makes_cache:
            entries = self.compressor(self, batch["context_ids"], batch["context_mask"].bool())
            gist = entries if row is None else entries.rows(row)
            soft, features = gist.hidden, spread(self.embed(batch["context_ids"]).detach())
            logits = self.cache_answer_logits(gist, *inputs)
        else:
            soft, features = self.compress(batch["context_ids"], batch["context_mask"])
            soft, features = spread(soft), spread(features)
            logits = self.answer_logits(soft, *inputs)
        mask = context_mask[..., None].to(features.dtype)
        summary = (features * mask).sum(1) / mask.sum(1)  # (B, d): mean context vector
        out = {"soft": soft, "logits": logits, "context_summary": summary}
        return out | {"entries": entries} if self.compressor.makes_cache else out

    def reconstruction_ce(self, entries: GistEntries, ids: torch.Tensor, mask: torch.Tensor, windows: int, generator: torch.Generator) -> torch.Tensor:
        """Per-window reconstruction (inspired by Deng et al., ACL 2025, fine-grained autoencoding): for
        `windows` non-empty windows of each context (of the spread layout's M windows), drawn at random,
        the decoder holds the prompt prefix and gists 1..i only, reads RECONSTRUCTION_CUE after gist i and
        then window i's tokens, teacher-forced; the mean cross-entropy over those tokens. Gist i alone has
        read window i (the gists before it were read before it), so each gist must keep its own window."""
        mask = mask.to(self.device).bool()
        b, m = entries.positions.shape
        ends = window_ends(mask.sum(1), m)  # (B, M)
        starts = torch.cat([ends.new_zeros(b, 1), ends[:, :-1]], dim=1)
        weights = (ends > starts).float().cpu()  # a row shorter than M tokens leaves some windows empty
        picked = torch.multinomial(weights, windows, replacement=True, generator=generator).to(ends.device)  # (B, k)
        context = torch.arange(b, device=ends.device).repeat_interleave(windows)  # (B k,)
        window = picked.flatten()
        cue, pad = self.tokenizer(RECONSTRUCTION_CUE, add_special_tokens=False).input_ids, self.tokenizer.pad_token_id
        rows, targets = [], []
        for c, i in zip(context.tolist(), window.tolist()):
            tokens = ids[c, starts[c, i] : ends[c, i]].tolist()
            rows.append([pad] + cue + tokens)  # the first column stands for the slot the cache fills
            targets.append(tokens)
        input_ids, attention = left_pad(rows, pad)
        slot = slot_mask([len(r) for r in rows], [(0, 1)] * len(rows), input_ids.shape[1])
        labels = left_pad(targets, losses.IGNORE)[0]  # right-aligned, as answers are
        held = entries.rows(context)
        visible = torch.arange(m, device=ends.device)[None, :] <= window[:, None]  # gists 1..i
        held.mask = visible if held.mask is None else held.mask & visible
        held.after = held.positions.gather(1, window[:, None])[:, 0] + 1  # the cue continues after gist i
        logits = self.cache_answer_logits(held, *(t.to(ids.device) for t in (input_ids, attention, slot)), labels.shape[1])
        return losses.answer_ce(logits, labels.to(ids.device))

    # --- checkpoints ---
    def trainable_groups(self, compressor_lr: float, lora_lr: float) -> list[dict]:
        groups = [{"params": [p for p in self.compressor.parameters() if p.requires_grad], "lr": compressor_lr}]  # not a frozen scorer
        lora = [p for p in self.llm.parameters() if p.requires_grad]
        return groups + ([{"params": lora, "lr": lora_lr}] if lora else [])

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.compressor.state_dict().items()}
        save_file(state, folder / WEIGHTS_FILE)
        atomic_write_json(folder / PIPELINE_CONFIG, dataclasses.asdict(self.config))
        meta = {
            "arch": self.config.arch,
            "config": dataclasses.asdict(self.compressor.config),
            "parameters": self.compressor.num_parameters(),
            "compressions_version": metadata.version("compressions"),
        }
        atomic_write_json(folder / COMPRESSOR_CONFIG, meta)
        atomic_write_json(folder / SHOTS_FILE, [dataclasses.asdict(e) for e in self.shots])
        if self.config.use_lora or self.config.encoder_lora:
            self.llm.save_pretrained(folder / ADAPTER_DIR)
        return folder

    def load_weights(self, folder: str | Path) -> None:
        """Start from a saved checkpoint's compressor and adapter weights (to train on with a new schedule);
        the checkpoint must be of this same pipeline configuration."""
        folder = Path(folder)
        if not (folder / COMPRESSOR_CONFIG).is_file():
            raise ConfigError(f"not a compressor checkpoint (no {COMPRESSOR_CONFIG}): {folder}")
        saved = dataclasses.asdict(load_config(PipelineConfig, folder / PIPELINE_CONFIG))
        differ = sorted(k for k, v in dataclasses.asdict(self.config).items() if saved.get(k) != v)
        if differ:
            raise ConfigError(f"checkpoint {folder} has another pipeline ({', '.join(differ)} differ)")
        self.compressor.load_state_dict(read_saved(folder / WEIGHTS_FILE, "tensors"), strict=True)
        if self.config.use_lora or self.config.encoder_lora:
            set_peft_model_state_dict(self.llm, load_peft_weights(str(folder / ADAPTER_DIR)))
        if self.config.separate_adapters:
            set_peft_model_state_dict(self.llm, load_peft_weights(str(folder / ADAPTER_DIR / ENCODER_ADAPTER)), adapter_name=ENCODER_ADAPTER)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        llm: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        device: str = "cpu",
    ) -> SoftPromptModel:
        """Rebuild a saved pipeline in eval mode; the LLM is loaded from the recorded name unless given."""
        folder = Path(folder)
        if not (folder / COMPRESSOR_CONFIG).is_file():
            raise ConfigError(f"not a compressor checkpoint (no {COMPRESSOR_CONFIG}): {folder}")
        config = load_config(PipelineConfig, folder / PIPELINE_CONFIG)
        meta = read_saved(folder / COMPRESSOR_CONFIG)
        meta["config"].setdefault("normalize_output", True)  # saved before the scale was free: it was clamped
        arch = compressor_class(meta["arch"])
        compressor = arch(arch.config_class(**meta["config"]))
        compressor.load_state_dict(read_saved(folder / WEIGHTS_FILE, "tensors"), strict=True)  # every key and shape must match
        if llm is None or tokenizer is None:
            llm, tokenizer = load_model(config.model, device=device)
        llm = with_reader(llm, config.reader)
        llm.requires_grad_(False)
        if config.use_lora or config.encoder_lora:
            llm = load_adapter(llm, folder / ADAPTER_DIR)
        if config.separate_adapters:
            with quiet_peft():
                llm.load_adapter(str(folder / ADAPTER_DIR / ENCODER_ADAPTER), adapter_name=ENCODER_ADAPTER)
        # a checkpoint saved before its solved examples were (shots.json) reads with the shipped ones
        shots = [SquadExample(**e) for e in read_saved(folder / SHOTS_FILE)] if (folder / SHOTS_FILE).is_file() else ()
        return cls(config, llm, tokenizer, compressor.to(device), shots).eval()
