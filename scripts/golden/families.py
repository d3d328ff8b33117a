"""Golden logits for the Qwen3 and Gemma 3 (text) model families.

What this is
    A small, self-contained PyTorch re-implementation of the forward pass of
    `Qwen3ForCausalLM` and `Gemma3ForCausalLM`, written from a reading of the
    public Hugging Face transformers sources (no transformers import needed):
        src/transformers/models/qwen3/modeling_qwen3.py
        src/transformers/models/qwen3/configuration_qwen3.py
        src/transformers/models/gemma3/modeling_gemma3.py
        src/transformers/models/gemma3/modular_gemma3.py
        src/transformers/models/gemma3/configuration_gemma3.py
        src/transformers/masking_utils.py          (sliding_window_overlay)
        src/transformers/modeling_rope_utils.py    (default / linear RoPE)
        src/transformers/configuration_utils.py    (what save_pretrained writes)
    It writes three tiny random checkpoints under test/fixtures/families/
    (config.json, model.safetensors, golden.json), which the TypeScript tests
    load and compare against.  golden.json holds the 16 input ids and the
    logits of a full forward from position 0, computed in float64 from the
    float32 weights and rounded to 7 significant digits.

    Rounding steps that HF performs in float32 even for float32 checkpoints
    are reproduced exactly (Gemma's sqrt(hidden_size) embedding scale, the
    RoPE inverse frequencies); everything else runs in float64.

Regenerate
    apt-get install python3-torch
    /usr/bin/python3 scripts/golden/families.py
"""
import json
import math
import struct
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "families"
IDS = [2, 95, 17, 0, 64, 33, 81, 9, 50, 71, 26, 88, 41, 5, 58, 93]

# ----------------------------------------------------------------------------- configs
# Written the way the hub checkpoints / save_pretrained write them (sorted keys, indent 2).
QWEN3 = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 94, "eos_token_id": 95, "head_dim": 16, "hidden_act": "silu", "hidden_size": 32,
    "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
    "max_window_layers": 3, "model_type": "qwen3", "num_attention_heads": 4, "num_hidden_layers": 3,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
    "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "float32",
    "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False, "vocab_size": 96,
}
# The same model as transformers 5 writes it (dtype, layer_types, rope_parameters, pad_token_id).
QWEN3_V5 = {k: v for k, v in QWEN3.items() if k not in ("rope_scaling", "rope_theta", "torch_dtype")}
QWEN3_V5.update({"dtype": "float32", "layer_types": ["full_attention"] * 3, "pad_token_id": None,
                 "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
                 "transformers_version": "5.0.0"})

_GEMMA_COMMON = {
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": None, "bos_token_id": 2, "head_dim": 16,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "max_position_embeddings": 128, "model_type": "gemma3_text",
    "num_attention_heads": 4, "num_key_value_heads": 2, "pad_token_id": 0,
    "query_pre_attn_scalar": 24, "rms_norm_eps": 1e-06, "use_cache": True, "vocab_size": 96,
}
# Older form (as google/gemma-3-1b-it): an integer pattern, no layer_types, and no
# tie_word_embeddings key (it equals the library default True, so it is not written).
GEMMA3_PATTERN = dict(_GEMMA_COMMON, **{
    "cache_implementation": "hybrid", "eos_token_id": [1, 95], "final_logit_softcapping": None,
    "num_hidden_layers": 6, "rope_local_base_freq": 10000, "rope_scaling": None,
    "rope_theta": 1000000, "sliding_window": 5, "sliding_window_pattern": 3,
    "torch_dtype": "float32", "transformers_version": "4.50.0.dev0",
})
_LT = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
# Newer form as transformers 5 save_pretrained writes it: layer_types, per-layer-type
# rope_parameters, dtype; the stale private "_sliding_window_pattern": 6 is still written
# and must be ignored in favour of layer_types.
GEMMA3_LAYERTYPES = dict(_GEMMA_COMMON, **{
    "_sliding_window_pattern": 6, "dtype": "float32", "eos_token_id": 1,
    "final_logit_softcapping": 30.0, "layer_types": _LT, "num_hidden_layers": 4,
    "rope_parameters": {
        "full_attention": {"factor": 8.0, "rope_theta": 1000000.0, "rope_type": "linear"},
        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}},
    "sliding_window": 4, "tie_word_embeddings": True, "transformers_version": "5.0.0",
    "use_bidirectional_attention": False,
})
# The same model as transformers 4.55 wrote it (e.g. google/gemma-3-270m): layer_types
# plus the flat rope_theta / rope_local_base_freq / rope_scaling keys.
GEMMA3_LAYERTYPES_V455 = {k: v for k, v in GEMMA3_LAYERTYPES.items()
                          if k not in ("dtype", "rope_parameters", "tie_word_embeddings")}
GEMMA3_LAYERTYPES_V455.update({
    "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    "rope_theta": 1000000.0, "torch_dtype": "float32", "transformers_version": "4.55.0"})


# ----------------------------------------------------------------------------- config reading
def layer_types(cfg):
    n = cfg["num_hidden_layers"]
    if cfg.get("layer_types"):
        return list(cfg["layer_types"])
    if cfg["model_type"] == "qwen3":  # sliding only when enabled, from max_window_layers on
        slide = cfg.get("use_sliding_window") and cfg.get("sliding_window") is not None
        return ["sliding_attention" if slide and i >= cfg["max_window_layers"] else "full_attention"
                for i in range(n)]
    p = cfg.get("sliding_window_pattern", 6)
    return ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(n)]


def rope_params(cfg):
    """{layer_type: (theta, linear_factor)} from either config spelling."""
    rp = cfg.get("rope_parameters")
    if cfg["model_type"] == "qwen3":
        rp = rp or dict(cfg.get("rope_scaling") or {}, rope_theta=cfg["rope_theta"])
        rp = {"full_attention": rp, "sliding_attention": rp}
    elif rp is None:
        rp = {"full_attention": dict(cfg.get("rope_scaling") or {}, rope_theta=cfg["rope_theta"]),
              "sliding_attention": {"rope_theta": cfg["rope_local_base_freq"]}}
    out = {}
    for lt, p in rp.items():
        kind = p.get("rope_type", p.get("type", "default"))
        assert kind in ("default", "linear"), kind
        out[lt] = (float(p["rope_theta"]), float(p["factor"]) if kind == "linear" else 1.0)
    return out


# ----------------------------------------------------------------------------- weights
def make_weights(cfg, seed):
    gemma = cfg["model_type"] == "gemma3_text"
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    D, NH, NKV = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    norms = ["input_layernorm", "post_attention_layernorm"]
    if gemma:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (NH * D, H), p + "self_attn.k_proj.weight": (NKV * D, H),
                       p + "self_attn.v_proj.weight": (NKV * D, H), p + "self_attn.o_proj.weight": (H, NH * D),
                       p + "self_attn.q_norm.weight": (D,), p + "self_attn.k_norm.weight": (D,),
                       p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H),
                       p + "mlp.down_proj.weight": (H, I)})
        shapes.update({p + n + ".weight": (H,) for n in norms})
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name in sorted(shapes):
        x = torch.randn(shapes[name], generator=g, dtype=torch.float32)
        if len(shapes[name]) == 2:
            w[name] = x * 0.2
        else:  # norm weights: Gemma stores an offset from 1, Qwen3 the multiplier itself
            w[name] = x * 0.1 if gemma else 1.0 + x * 0.1
    return w


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(torch.float32).contiguous()
        raw = struct.pack("<%df" % t.numel(), *t.flatten().tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # pad so the data section starts 8-byte aligned
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


# ----------------------------------------------------------------------------- forward
def inv_freq(theta, dim, factor):
    # HF builds these in float32 (arange(0, dim, 2) / dim, base ** that, 1 / that, then / factor).
    e = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim
    return (1.0 / (theta ** e)) / factor


def rope(x, pos, theta, factor):
    """Rotate-half RoPE; x is [T, heads, D]. Angles are pos * inv_freq in x's dtype."""
    f = inv_freq(theta, x.shape[-1], factor).to(x.dtype)
    ang = pos.to(x.dtype)[:, None] * f[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


def rms(x, w, eps, gemma):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w) if gemma else y * w


def forward(cfg, w, ids, dtype=torch.float64, force_full=False, no_softcap=False):
    gemma = cfg["model_type"] == "gemma3_text"
    W = {k: v.to(dtype) for k, v in w.items()}
    eps, D = cfg["rms_norm_eps"], cfg["head_dim"]
    NH, NKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    types, ropes = layer_types(cfg), rope_params(cfg)
    T = len(ids)
    pos = torch.arange(T)
    i_idx, j_idx = pos[:, None], pos[None, :]
    masks = {"full_attention": j_idx <= i_idx}
    if cfg.get("sliding_window") is not None:  # a query at i sees keys j with i - window < j <= i
        masks["sliding_attention"] = (j_idx <= i_idx) & (j_idx > i_idx - cfg["sliding_window"])
    scale = (cfg["query_pre_attn_scalar"] if gemma else D) ** -0.5

    h = W["model.embed_tokens.weight"][torch.tensor(ids)]
    if gemma:  # sqrt(hidden) is a float32 tensor in HF, then cast to the weight dtype (f32 here)
        h = h * float(torch.tensor(cfg["hidden_size"] ** 0.5, dtype=torch.float32))
    for li, lt in enumerate(types):
        p = f"model.layers.{li}."
        lt_mask = "full_attention" if force_full else lt
        res = h
        x = rms(h, W[p + "input_layernorm.weight"], eps, gemma)
        q = (x @ W[p + "self_attn.q_proj.weight"].T).view(T, NH, D)
        k = (x @ W[p + "self_attn.k_proj.weight"].T).view(T, NKV, D)
        v = (x @ W[p + "self_attn.v_proj.weight"].T).view(T, NKV, D)
        q = rms(q, W[p + "self_attn.q_norm.weight"], eps, gemma)  # per-head norm over head_dim
        k = rms(k, W[p + "self_attn.k_norm.weight"], eps, gemma)
        theta, factor = ropes[lt]  # RoPE follows the layer's type even when force_full is set
        q, k = rope(q, pos, theta, factor), rope(k, pos, theta, factor)
        k = k.repeat_interleave(NH // NKV, dim=1)  # query head n uses kv head n // (NH / NKV)
        v = v.repeat_interleave(NH // NKV, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) * scale
        s = s.masked_fill(~masks[lt_mask][None], float("-inf"))
        a = torch.einsum("hij,jhd->ihd", s.softmax(-1), v).reshape(T, NH * D)
        a = a @ W[p + "self_attn.o_proj.weight"].T
        if gemma:
            a = rms(a, W[p + "post_attention_layernorm.weight"], eps, True)
            h = res + a
            x = rms(h, W[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            h = res + a
            x = rms(h, W[p + "post_attention_layernorm.weight"], eps, False)
        gate = x @ W[p + "mlp.gate_proj.weight"].T
        act = torch.nn.functional.gelu(gate, approximate="tanh") if gemma else torch.nn.functional.silu(gate)
        m = (act * (x @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        if gemma:
            m = rms(m, W[p + "post_feedforward_layernorm.weight"], eps, True)
        h = h + m
    h = rms(h, W["model.norm.weight"], eps, gemma)
    logits = h @ W["model.embed_tokens.weight"].T  # tied head
    cap = cfg.get("final_logit_softcapping")
    if cap is not None and not no_softcap:
        logits = cap * torch.tanh(logits / cap)
    return logits


# ----------------------------------------------------------------------------- main
def sig7(x):
    return float("%.7g" % x)


def build(name, cfg, seed, alt=None):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    w = make_weights(cfg, seed)
    (d / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_safetensors(d / "model.safetensors", w)
    ref = forward(cfg, w, IDS)
    f32 = forward(cfg, w, IDS, torch.float32).double()
    gold = {"ids": IDS, "logits": [[sig7(x) for x in row] for row in ref.tolist()]}
    (d / "golden.json").write_text(json.dumps(gold, separators=(",", ":")) + "\n")
    stored = torch.tensor(gold["logits"], dtype=torch.float64)
    print(f"{name}: logits |max| {ref.abs().max():.4f}, f32 vs f64 max|d| {(f32 - ref).abs().max():.3e}, "
          f"rounding max|d| {(stored - ref).abs().max():.3e}, golden.json {(d / 'golden.json').stat().st_size} B")
    if alt:
        fname, acfg = alt
        (d / fname).write_text(json.dumps(acfg, indent=2, sort_keys=True) + "\n")
        assert layer_types(acfg) == layer_types(cfg) and rope_params(acfg) == rope_params(cfg)
        print(f"  {fname}: same model, max|d| {(forward(acfg, w, IDS) - ref).abs().max():.1e}")
    types = layer_types(cfg)
    print(f"  layer types {[t[0].upper() for t in types]}, rope {rope_params(cfg)}")
    if "sliding_attention" in types:
        full = forward(cfg, w, IDS, force_full=True)
        dpos = (full - ref).abs().max(-1).values
        win = cfg["sliding_window"]
        assert dpos[:win].max() == 0 and dpos[win:].min() > 1e-3, dpos
        print(f"  sliding vs all-full: positions < {win} identical, positions >= {win} differ "
              f"(min {dpos[win:].min():.3e}, max {dpos.max():.3e})")
    if cfg.get("final_logit_softcapping") is not None:
        raw = forward(cfg, w, IDS, no_softcap=True)
        print(f"  softcap effect: raw |max| {raw.abs().max():.4f}, max|capped - raw| {(raw - ref).abs().max():.3e}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    build("qwen3", QWEN3, 3001, ("config.v5.json", QWEN3_V5))
    build("gemma3-pattern", GEMMA3_PATTERN, 3002)
    build("gemma3-layertypes", GEMMA3_LAYERTYPES, 3003, ("config.v4_55.json", GEMMA3_LAYERTYPES_V455))
