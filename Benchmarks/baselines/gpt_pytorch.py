#!/usr/bin/env python3
"""The PyTorch side of the gpu-vs-pytorch benchmark: a plain training loop of the same GPT the Elastic engine
trains (GPT-2 names and layout: pre-LayerNorm blocks, fused causal attention, tanh GELU, tied embeddings,
dropout on embeddings and residual branches), with gradient accumulation over micro-batches, global-norm
clipping and AdamW (decay on matrices and embeddings only). bf16 is torch.autocast, as a PyTorch user writes
it. Prints one JSON line: median step time and tokens/s over the timed steps."""
import argparse, json, math, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.heads, self.dropout = heads, dropout

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(b, t, c)
        x = x + F.dropout(self.attn_proj(y), self.dropout, self.training)
        h = F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")
        return x + F.dropout(self.mlp_proj(h), self.dropout, self.training)


class Gpt(nn.Module):
    def __init__(self, layers, d, heads, vocab, context, dropout):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.h = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln_f, self.dropout = nn.LayerNorm(d), dropout
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                nn.init.normal_(p, 0, 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02)

    def forward(self, tokens, targets):
        x = F.dropout(self.wte(tokens) + self.wpe(torch.arange(tokens.shape[1], device=tokens.device)), self.dropout, self.training)
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    a.add_argument("--layers", type=int, default=12)
    a.add_argument("--d", type=int, default=768)
    a.add_argument("--heads", type=int, default=12)
    a.add_argument("--context", type=int, default=1024)
    a.add_argument("--vocab", type=int, default=256)
    a.add_argument("--batch", type=int, default=32)
    a.add_argument("--micro", type=int, default=16)
    a.add_argument("--dropout", type=float, default=0.1)
    a.add_argument("--warmup", type=int, default=3)
    a.add_argument("--steps", type=int, default=20)
    args = a.parse_args()

    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    dev = torch.device("cuda")
    model = Gpt(args.layers, args.d, args.heads, args.vocab, args.context, args.dropout).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                                  lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    micro_batches = args.batch // args.micro
    data = torch.randint(0, args.vocab, (micro_batches, args.micro, args.context + 1), device=dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        for m in range(micro_batches):
            with autocast:
                loss = model(data[m, :, :-1], data[m, :, 1:]) / micro_batches
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({"precision": args.precision, "median_step_ms": median * 1000, "tokens_per_s": args.batch * args.context / median,
                      "parameters": sum(p.numel() for p in model.parameters()), "device": torch.cuda.get_device_name(0)}))


if __name__ == "__main__":
    main()
