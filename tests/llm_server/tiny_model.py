"""A tiny llama-architecture GGUF model, written with the ``gguf`` package, for llama.cpp to load.

It is a real two-block transformer (random attention and feed-forward weights) over a tiny
SentencePiece-style vocabulary: the special tokens, the 256 byte-fallback tokens ``<0x00>`` ...
``<0xFF>`` and one token per printable ASCII character (``▁`` for the space), so any text
tokenizes and any JSON a grammar asks for can be spelt.

Random weights alone would babble until ``max_tokens`` (a ``finish_reason`` of "length", which
``ModelClient`` rightly refuses), so a bigram readout is planted: the attention and feed-forward
output projections are tiny, the residual stream stays close to the current token's embedding,
and ``output.weight`` maps that embedding to the next token. Whatever the prompt, an unconstrained
reply is ``REPLY`` and then end-of-sequence; under a grammar (a forced tool call) the grammar
picks the characters and the model ends when the grammar is complete.
"""

from __future__ import annotations

from pathlib import Path

REPLY = "Meow"
CONTEXT_LENGTH = 2048  # tokens; chatml-function-calling's tool preamble alone is ~800
EMBEDDING = 64
HEADS = 4
BLOCKS = 2
FEED_FORWARD = 128
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
UNK, BOS, EOS = 0, 1, 2
PLANTED_LOGIT = 4.0  # times ~sqrt(EMBEDDING) after the final RMS norm: a margin of ~32


def vocabulary() -> tuple[list[str], list[int]]:
    """The token texts and their GGUF token types."""
    from gguf import TokenType

    tokens = list(SPECIALS)
    types = [TokenType.UNKNOWN] + [TokenType.CONTROL] * (len(SPECIALS) - 1)
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [TokenType.BYTE] * 256
    printable = ["▁"] + [chr(code) for code in range(0x21, 0x7F)]
    tokens += printable
    types += [TokenType.NORMAL] * len(printable)
    return tokens, [int(kind) for kind in types]


def write_tiny_llama(path: Path, seed: int = 20240519) -> Path:
    """Write the model to ``path`` (about 0.4 MB) and return it."""
    import numpy as np
    from gguf import GGUFWriter

    tokens, types = vocabulary()
    index = {text: number for number, text in enumerate(tokens)}
    rng = np.random.default_rng(seed)

    def noise(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # the bigram chain: any other token -> REPLY[0] -> REPLY[1] ... -> REPLY[-1] -> end
    chain = [index[letter] for letter in REPLY]
    successor = {0: chain[0]}  # state 0: every token outside the chain
    state_of: dict[int, int] = {}
    for position, token in enumerate(chain, start=1):
        state_of[token] = position
        successor[position] = chain[position] if position < len(chain) else EOS

    embeddings = noise(len(tokens), EMBEDDING, scale=0.01)
    for token in range(len(tokens)):
        embeddings[token, state_of.get(token, 0)] += 1.0
    output = noise(len(tokens), EMBEDDING, scale=0.01)
    for state, token in successor.items():
        output[token, state] += PLANTED_LOGIT

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("meowstik-tiny-random-llama")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)

    ones = np.ones(EMBEDDING, dtype=np.float32)
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    for block in range(BLOCKS):
        prefix = f"blk.{block}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{prefix}.{name}.weight", noise(EMBEDDING, EMBEDDING, scale=0.02))
        writer.add_tensor(f"{prefix}.attn_output.weight", noise(EMBEDDING, EMBEDDING, scale=1e-3))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", ones)
        writer.add_tensor(f"{prefix}.ffn_gate.weight", noise(FEED_FORWARD, EMBEDDING, scale=0.02))
        writer.add_tensor(f"{prefix}.ffn_up.weight", noise(FEED_FORWARD, EMBEDDING, scale=0.02))
        writer.add_tensor(f"{prefix}.ffn_down.weight", noise(EMBEDDING, FEED_FORWARD, scale=1e-3))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
