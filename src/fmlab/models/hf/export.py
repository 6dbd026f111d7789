"""fmlab's GPT ⇄ Hugging Face ``GPT2LMHeadModel``, exactly.

GPT-2 is the transformers architecture that fmlab's GPT maps onto without approximation:
pre-LayerNorm blocks (eps 1e-5), learned absolute positions, multi-head softmax attention
scaled by 1/√d_head, a two-layer MLP with an exact-GELU (``activation_function="gelu"``)
or ReLU, a final LayerNorm and an unembedding that is tied or not
(``tie_word_embeddings``). fmlab's ``Linear`` stores its weight as (d_in, d_out), which is
also the layout of transformers' ``Conv1D``, so weights are copied, never transposed;
q, k and v are concatenated into ``c_attn``. Llama does not map (RMSNorm, rotary
positions, a gated MLP), nor does any other mixer than full causal attention.

Two details keep the map exact both ways:

* fmlab's attention has **no key bias**: it adds q·b_k to every score of a query, which
  softmax ignores. GPT-2's ``c_attn`` has one; exporting writes zeros there, and loading
  drops whatever is there — the model computes the same function either way (and since
  its gradient is exactly zero, fine-tuning never moves it off zero).
* a model **without biases** (``bias=False``) exports with zero biases; loading one back
  gives ``bias=False`` only while all of them are still zero.

``config.json`` also records the fmlab config under ``fmlab_gpt_config``; the loader uses
it for what GPT-2 cannot say (``init_scale``) and checks the rest against GPT-2's fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fmlab.errors import UserInputError
from fmlab.models.gpt import GPT, GPTConfig

LN_EPS = 1e-5  # torch.nn.LayerNorm's default, which fmlab's blocks use


def unsupported(cfg: GPTConfig) -> str | None:
    """Why ``cfg`` does not map exactly onto GPT-2 (None when it does)."""
    mixer = cfg.mixer
    if mixer.kind != "attention":
        return f"its mixer is {mixer.kind}; GPT-2 has softmax attention"
    if getattr(mixer, "window", None) is not None:
        return "its attention is windowed (window={}); GPT-2 attends to every earlier position"
    if cfg.norm != "layernorm":
        return f"norm={cfg.norm}; GPT-2 always has pre-LayerNorm"
    if cfg.pos_embed != "learned":
        return f"pos_embed={cfg.pos_embed}; GPT-2 adds learned positions"
    if cfg.d_mlp == 0:
        return "it is attention-only (d_mlp=0); every GPT-2 block has an MLP"
    if cfg.moe is not None:
        return "it has a mixture of experts; GPT-2 has one dense MLP"
    if cfg.short_conv:
        return f"short_conv={cfg.short_conv}; GPT-2 has no convolution"
    if cfg.n_heads * cfg.head_dim != cfg.d_model:
        return f"n_heads·d_head = {cfg.n_heads * cfg.head_dim} ≠ d_model = {cfg.d_model}"
    return None


def check_exportable(cfg: GPTConfig) -> None:
    reason = unsupported(cfg)
    if reason is not None:
        if "{}" in reason:
            reason = reason.format(cfg.mixer.window)
        raise UserInputError(f"this GPT does not map exactly onto GPT-2: {reason}")


def gpt2_config(cfg: GPTConfig, vocab_size: int, seq_len: int) -> Any:
    """The ``GPT2Config`` of a GPT of this config (dropout off: fmlab has none)."""
    from transformers import GPT2Config

    check_exportable(cfg)
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_mlp,
        activation_function=cfg.act,  # "gelu" is the exact erf GELU in both
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=LN_EPS,
        scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False,
        tie_word_embeddings=cfg.tied_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        fmlab_gpt_config=cfg.model_dump(mode="json"),
        architectures=["GPT2LMHeadModel"],
    )


def gpt2_state_dict(model: GPT) -> dict[str, Tensor]:
    """``model``'s weights under GPT2LMHeadModel's names (copies, on the CPU)."""
    cfg = model.cfg
    check_exportable(cfg)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    D = cfg.d_model
    zeros = lambda n: torch.zeros(n, dtype=sd["W_E"].dtype)  # noqa: E731
    bias = lambda key, n: sd.get(key, zeros(n))  # noqa: E731  (bias=False: zeros)
    out = {"transformer.wte.weight": sd["W_E"], "transformer.wpe.weight": sd["W_pos"]}
    for i in range(cfg.n_layers):
        b, h = f"blocks.{i}.", f"transformer.h.{i}."
        for ln_fm, ln_hf in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[h + ln_hf + ".weight"] = sd[f"{b}{ln_fm}.weight"]
            out[h + ln_hf + ".bias"] = sd[f"{b}{ln_fm}.bias"]
        att = b + "mixer."
        out[h + "attn.c_attn.weight"] = torch.cat(
            [sd[att + "w_q.weight"], sd[att + "w_k.weight"], sd[att + "w_v.weight"]], dim=1
        )  # (D, 3D)
        out[h + "attn.c_attn.bias"] = torch.cat(
            [bias(att + "w_q.bias", D), zeros(D), bias(att + "w_v.bias", D)]
        )  # no key bias: zeros (softmax ignores it)
        out[h + "attn.c_proj.weight"] = sd[att + "w_o.weight"]
        out[h + "attn.c_proj.bias"] = bias(att + "w_o.bias", D)
        out[h + "mlp.c_fc.weight"] = sd[b + "mlp.w_in.weight"]
        out[h + "mlp.c_fc.bias"] = bias(b + "mlp.w_in.bias", cfg.d_mlp)
        out[h + "mlp.c_proj.weight"] = sd[b + "mlp.w_out.weight"]
        out[h + "mlp.c_proj.bias"] = bias(b + "mlp.w_out.bias", D)
    out["transformer.ln_f.weight"] = sd["ln_final.weight"]
    out["transformer.ln_f.bias"] = sd["ln_final.bias"]
    out["lm_head.weight"] = sd["W_E"] if model.W_U is None else sd["W_U"].T.contiguous()
    return out


def fmlab_state_dict(hf: dict[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """The inverse of :func:`gpt2_state_dict`: GPT-2 names (with or without the
    ``transformer.`` prefix) → fmlab's, for a GPT of config ``cfg``. The key bias is
    dropped (exact: softmax ignores it); so are the biases of a ``bias=False`` config."""
    t = {k.removeprefix("transformer."): v for k, v in hf.items()}
    D = cfg.d_model
    out = {"W_E": t["wte.weight"], "W_pos": t["wpe.weight"]}
    for i in range(cfg.n_layers):
        b, h = f"blocks.{i}.", f"h.{i}."
        for ln_fm, ln_hf in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[f"{b}{ln_fm}.weight"] = t[h + ln_hf + ".weight"]
            out[f"{b}{ln_fm}.bias"] = t[h + ln_hf + ".bias"]
        q, k, v = t[h + "attn.c_attn.weight"].split(D, dim=1)
        bq, _, bv = t[h + "attn.c_attn.bias"].split(D)
        att = b + "mixer."
        out |= {att + "w_q.weight": q, att + "w_k.weight": k, att + "w_v.weight": v}
        out[att + "w_o.weight"] = t[h + "attn.c_proj.weight"]
        out[b + "mlp.w_in.weight"] = t[h + "mlp.c_fc.weight"]
        out[b + "mlp.w_out.weight"] = t[h + "mlp.c_proj.weight"]
        if cfg.bias:
            out |= {att + "w_q.bias": bq, att + "w_v.bias": bv}
            out[att + "w_o.bias"] = t[h + "attn.c_proj.bias"]
            out[b + "mlp.w_in.bias"] = t[h + "mlp.c_fc.bias"]
            out[b + "mlp.w_out.bias"] = t[h + "mlp.c_proj.bias"]
    out["ln_final.weight"], out["ln_final.bias"] = t["ln_f.weight"], t["ln_f.bias"]
    if not cfg.tied_embeddings:
        out["W_U"] = hf["lm_head.weight"].T.contiguous()
    return {k: v.detach().clone() for k, v in out.items()}


def to_hf(model: GPT) -> Any:
    """A ``GPT2LMHeadModel`` computing exactly what ``model`` computes (fp32, CPU)."""
    from transformers import GPT2LMHeadModel

    config = gpt2_config(model.cfg, model.vocab_size, model.seq_len)
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten below
        hf = GPT2LMHeadModel(config)
    state = gpt2_state_dict(model)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight")
    missing, unexpected = hf.load_state_dict(state, strict=False)
    leftover = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if leftover or unexpected:  # a bug in the map above, never the user's input
        raise RuntimeError(f"GPT-2 map incomplete: missing {leftover}, unexpected {unexpected}")
    return hf.eval()


def gpt_config_of(config: Any, state: dict[str, Tensor]) -> GPTConfig:
    """The fmlab config of a GPT-2 config (and its weights, for ``bias``); a GPT-2 that
    fmlab cannot compute exactly is one clear error."""
    bad = []
    act = getattr(config, "activation_function", None)
    if act not in ("gelu", "relu"):
        bad.append(f"activation_function={act!r} (fmlab has the exact 'gelu' and 'relu')")
    if abs(getattr(config, "layer_norm_epsilon", LN_EPS) - LN_EPS) > 0:
        bad.append(f"layer_norm_epsilon={config.layer_norm_epsilon} (fmlab: {LN_EPS})")
    if not getattr(config, "scale_attn_weights", True):
        bad.append("scale_attn_weights=False")
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        bad.append("scale_attn_by_inverse_layer_idx=True")
    if getattr(config, "add_cross_attention", False):
        bad.append("cross-attention")
    if bad:
        raise UserInputError(f"this GPT-2 does not map exactly onto fmlab's GPT: {bad[0]}")
    saved = dict(getattr(config, "fmlab_gpt_config", None) or {})
    D = config.n_embd
    biases = [v for k, v in state.items() if k.endswith("c_proj.bias") or k.endswith("c_fc.bias")]
    biases += [state[k][torch.arange(3 * D) // D != 1] for k in state if k.endswith("c_attn.bias")]
    has_bias = any(bool(v.any()) for v in biases)
    fields = dict(
        d_model=D,
        n_layers=config.n_layer,
        n_heads=config.n_head,
        d_head=None,
        d_mlp=config.n_inner or 4 * D,
        act=act,
        norm="layernorm",
        tied_embeddings=bool(config.tie_word_embeddings),
        pos_embed="learned",
        bias=has_bias or saved.get("bias", True),
        mixer="attention",
        init_scale=saved.get("init_scale", 1.0),
    )
    return GPTConfig(**fields)


def from_hf(hf: Any) -> GPT:
    """fmlab's GPT computing exactly what a ``GPT2LMHeadModel`` computes."""
    state = {k: v.detach().cpu() for k, v in hf.state_dict().items()}
    if "lm_head.weight" not in state:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return gpt_from_state(hf.config, state)


def gpt_from_state(config: Any, state: dict[str, Tensor]) -> GPT:
    """fmlab's GPT from a GPT-2 config and a GPT-2 state dict (``lm_head.weight``
    included, even when tied)."""
    cfg = gpt_config_of(config, state)
    with torch.random.fork_rng(devices=[]):
        model = GPT(
            cfg,
            vocab_size=config.vocab_size,
            seq_len=config.n_positions,
            generator=torch.Generator().manual_seed(0),
        )
    model.load_state_dict(fmlab_state_dict(state, cfg), strict=True)
    return model.eval()


def load_gpt(path: str | Path) -> GPT:
    """fmlab's GPT from an exported directory (or any exactly-mapping GPT-2 directory),
    read under the safety rules of :func:`fmlab.models.hf.load`."""
    from fmlab.models.hf.load import load

    loaded = load(str(path), task="causal-lm")
    if type(loaded.model).__name__ != "GPT2LMHeadModel":
        raise UserInputError(f"{path} holds a {type(loaded.model).__name__}, not a GPT-2")
    return from_hf(loaded.model)


def save_hf(model: GPT, out_dir: str | Path, *, source: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a transformers directory: ``config.json``,
    ``model.safetensors`` and a word-level tokenizer (``t0`` … ``t{V-1}``)."""
    out = Path(out_dir)
    hf = to_hf(model)
    if source:
        hf.config.fmlab_source = source
    out.mkdir(parents=True, exist_ok=True)
    import transformers

    from fmlab.models.hf.load import _quiet_loading

    with _quiet_loading(transformers):  # no progress bar for one small shard
        hf.save_pretrained(out)
    save_tokenizer(model.vocab_size, model.seq_len, out)
    return out


def save_tokenizer(vocab_size: int, seq_len: int, out: Path) -> None:
    """A word-level tokenizer whose words are the token ids, ``t0`` … ``t{V-1}``
    (synthetic languages have no text). Unknown words read as ``t0``, so any text
    runs; only ``t``-words mean anything to the model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="t0", pad_token="t0", model_max_length=seq_len
    )
    fast.save_pretrained(out)


def describe(out_dir: Path) -> dict[str, Any]:
    config = json.loads((Path(out_dir) / "config.json").read_text())
    return {k: config.get(k) for k in ("architectures", "n_layer", "n_embd", "vocab_size")}


# ---------------------------------------------------------------- from a run directory
def gpt_weights(run_dir: Path) -> dict[str, Path]:
    """The GPT weight files of a run (``artifacts/<name>.safetensors`` with token
    embeddings and blocks), by name."""
    from safetensors import safe_open

    found = {}
    for file in sorted((Path(run_dir) / "artifacts").glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt") as f:
                keys = set(f.keys())
        except Exception:  # not a readable safetensors file: not a model to offer
            continue
        if "W_E" in keys and any(k.startswith("blocks.") for k in keys):
            found[file.stem] = file
    return found


def gpt_from_run(run_dir: str | Path, weights: str | None = None) -> tuple[GPT, dict[str, Any]]:
    """The fmlab GPT saved in a run directory: its config from the run's ``model``
    field, its size (layers, vocabulary, context) from the weights themselves."""
    from safetensors.torch import load_file

    from fmlab.config import validate
    from fmlab.contracts import CorruptFileError
    from fmlab.store import read_config

    run_dir = Path(run_dir)
    try:
        config = read_config(run_dir)
    except (FileNotFoundError, CorruptFileError) as e:
        raise UserInputError(str(e)) from None
    files = gpt_weights(run_dir)
    if not files:
        raise UserInputError(f"{run_dir} saved no GPT weights (artifacts/*.safetensors)")
    if weights is None and len(files) > 1:
        raise UserInputError(f"{run_dir} has several models; choose one with --weights: "
                             f"{', '.join(files)}")  # fmt: skip
    name = weights if weights is not None else next(iter(files))
    if name not in files:
        raise UserInputError(f"no GPT weights {name!r} in {run_dir}; it has: {', '.join(files)}")
    spec = config["config"].get("model")
    if not isinstance(spec, dict):
        raise UserInputError(f"the config of {run_dir} has no GPT `model` field to export")
    state = load_file(str(files[name]))
    n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    try:  # the weights say how many layers (a study may train several depths)
        cfg = validate(GPTConfig, {**spec, "n_layers": n_layers})
    except Exception as e:
        raise UserInputError(f"the `model` of {run_dir} is not a GPT config: {e}") from None
    check_exportable(cfg)
    if "W_pos" not in state:
        raise UserInputError(f"{name} has no learned positions; GPT-2 needs them")
    V, T = state["W_E"].shape[0], state["W_pos"].shape[0]
    with torch.random.fork_rng(devices=[]):
        model = GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(0))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:300]
        raise UserInputError(f"{name} does not fit the run's GPT config: {first}") from None
    source = {"run": str(run_dir), "study": config.get("study"), "run_id": config.get("run_id"),
              "weights": name}  # fmt: skip
    return model.eval(), source


def export_run(run_dir: str | Path, out_dir: str | Path, weights: str | None = None) -> Path:
    """``fmlab export``: a run's GPT as a transformers directory (see :func:`save_hf`)."""
    model, source = gpt_from_run(run_dir, weights)
    return save_hf(model, out_dir, source=source)
