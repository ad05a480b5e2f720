"""A minimal decoder-only transformer registered as ``StandInLM`` for the loop's tests: one pre-LN block of
causal self-attention (fused q/k/v) and an MLP of 4 x dim, tied output. Its forward multiply-adds per token
by hand: ``12 d^2 + 2 T d + d V`` (q/k/v 3 d^2, output d^2, MLP 8 d^2, attention 2 T d, logits d V)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from growkit import models


class StandInLM(nn.Module):
    def __init__(self, dim=8, heads=2, vocab_size=16, context=8):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(context, dim)
        self.ln_1, self.ln_2, self.ln_f = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    @property
    def spec(self):
        return {"name": "StandInLM", "dim": self.dim, "heads": self.heads, "vocab_size": self.wte.num_embeddings,
                "context": self.wpe.num_embeddings}

    @property
    def arch(self):
        return f"StandInLM-{self.dim}"

    def forward(self, idx):
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        q, k, v = self.qkv(self.ln_1(x)).split(self.dim, dim=2)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, self.dim))
        x = x + self.out(F.gelu(self.fc(self.ln_2(x))))
        return F.linear(self.ln_f(x), self.wte.weight)


if "StandInLM" not in models.list_models():
    models.register("StandInLM", StandInLM)
