#!/usr/bin/env python3
"""An independent reference for Elastic's exported models: reads a Hugging Face model folder (config.json and a
model.safetensors in float32, bfloat16 or float16; GPT2LMHeadModel, LlamaForCausalLM or MixtralForCausalLM) and a file of token ids, and prints the mean next-token loss over
consecutive windows of the context length (inputs t[iC .. iC+C), targets one token later), every prediction alike.

Written from the published descriptions (GPT-2: Radford et al. 2019 and Hugging Face's Conv1D layout; Llama: Touvron et
al. 2023, RMSNorm, SwiGLU, rotary embeddings in Hugging Face's rotate_half convention, grouped-query attention; Mixtral:
Jiang et al. 2024, a softmax router whose top k experts' weights are renormalised to sum to one), in
float64 numpy, sharing no code with Elastic.

usage: reference_loss.py MODEL_DIR IDS_FILE
"""
import json
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[8 + n + start:8 + n + end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            values = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            # bfloat16 is the upper half of a float32.
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{name}: dtype {info['dtype']}, this reference reads F32, F16 and BF16")
        tensors[name] = values.reshape(info["shape"]).astype(np.float64)
    return tensors


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def causal_attention(q, k, v):
    """q, k, v: [heads, time, head_dim]."""
    t = q.shape[1]
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    scores[:, np.triu(np.ones((t, t), dtype=bool), 1)] = -np.inf
    scores -= scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v


def gpt2_logits(w, cfg, ids):
    t, d, h = len(ids), cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)

    def p(name):
        return w["transformer." + name] if "transformer." + name in w else w[name]

    def heads(z):
        return z.reshape(t, h, d // h).transpose(1, 0, 2)

    x = p("wte.weight")[ids] + p("wpe.weight")[:t]
    for i in range(cfg["n_layer"]):
        l = f"h.{i}."
        a = layer_norm(x, p(l + "ln_1.weight"), p(l + "ln_1.bias"), eps)
        q, k, v = np.split(a @ p(l + "attn.c_attn.weight") + p(l + "attn.c_attn.bias"), 3, axis=-1)
        y = causal_attention(heads(q), heads(k), heads(v)).transpose(1, 0, 2).reshape(t, d)
        x = x + y @ p(l + "attn.c_proj.weight") + p(l + "attn.c_proj.bias")
        m = layer_norm(x, p(l + "ln_2.weight"), p(l + "ln_2.bias"), eps)
        x = x + gelu_new(m @ p(l + "mlp.c_fc.weight") + p(l + "mlp.c_fc.bias")) @ p(l + "mlp.c_proj.weight") + p(l + "mlp.c_proj.bias")
    x = layer_norm(x, p("ln_f.weight"), p("ln_f.bias"), eps)
    head = w["lm_head.weight"] if not cfg.get("tie_word_embeddings", True) else p("wte.weight")
    return x @ head.T


def swiglu(m, gate, up, down):
    return (silu(m @ gate.T) * (m @ up.T)) @ down.T


def sparse_moe(m, w, l, cfg):
    """Mixtral's block: each token goes to its top k experts by router probability, their outputs weighted by those
    probabilities renormalised to sum to one."""
    logits = m @ w[l + "gate.weight"].T
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    k = cfg["num_experts_per_tok"]
    out = np.zeros_like(m)
    for token in range(m.shape[0]):
        chosen = np.argsort(-probs[token], kind="stable")[:k]
        weights = probs[token, chosen] / probs[token, chosen].sum()
        for e, g in zip(chosen, weights):
            x = l + f"experts.{e}."
            out[token] += g * swiglu(m[token], w[x + "w1.weight"], w[x + "w3.weight"], w[x + "w2.weight"])
    return out


def llama_logits(w, cfg, ids):
    t, d, h = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", h)
    hd = cfg.get("head_dim", d // h)
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    angles = np.outer(np.arange(t), theta ** (-np.arange(0, hd, 2) / hd))
    angles = np.concatenate([angles, angles], -1)
    cos, sin = np.cos(angles), np.sin(angles)

    def rope(z):
        half = hd // 2
        return z * cos + np.concatenate([-z[..., half:], z[..., :half]], -1) * sin

    def project(x, name, count):
        return (x @ w[name].T).reshape(t, count, hd).transpose(1, 0, 2)

    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        l = f"model.layers.{i}."
        a = rms_norm(x, w[l + "input_layernorm.weight"], eps)
        q = rope(project(a, l + "self_attn.q_proj.weight", h))
        k = np.repeat(rope(project(a, l + "self_attn.k_proj.weight", kv)), h // kv, axis=0)
        v = np.repeat(project(a, l + "self_attn.v_proj.weight", kv), h // kv, axis=0)
        y = causal_attention(q, k, v).transpose(1, 0, 2).reshape(t, h * hd)
        x = x + y @ w[l + "self_attn.o_proj.weight"].T
        m = rms_norm(x, w[l + "post_attention_layernorm.weight"], eps)
        if cfg["model_type"] == "mixtral":
            x = x + sparse_moe(m, w, l + "block_sparse_moe.", cfg)
        else:
            x = x + swiglu(m, w[l + "mlp.gate_proj.weight"], w[l + "mlp.up_proj.weight"], w[l + "mlp.down_proj.weight"])
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T


def main():
    folder, ids_file = sys.argv[1], sys.argv[2]
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    weights = load_safetensors(f"{folder}/model.safetensors")
    with open(ids_file) as f:
        tokens = [int(s) for s in f.read().split()]
    logits_of = {"gpt2": gpt2_logits, "llama": llama_logits, "mixtral": llama_logits}[cfg["model_type"]]
    context = cfg.get("n_positions", cfg.get("max_position_embeddings"))
    total, count = 0.0, 0
    for start in range(0, len(tokens) - 1, context):
        length = min(context, len(tokens) - 1 - start)
        logits = logits_of(weights, cfg, np.array(tokens[start:start + length]))
        logits -= logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        total -= log_probs[np.arange(length), tokens[start + 1:start + 1 + length]].sum()
        count += length
    print(f"{total / count:.9f}")


if __name__ == "__main__":
    main()
