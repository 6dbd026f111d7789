"""Canonical sites on tiny random models of every family: shapes, what the tensors are
(checked against the models' own hidden states and the residual-stream identity),
hooks removed, activation patching, the logit lens."""

from __future__ import annotations

import pytest
import torch

from fmlab.errors import UserInputError
from fmlab.hooks import (
    HFFamily,
    Site,
    Tower,
    UnsupportedModelError,
    available_sites,
    block_sites,
    capture,
    hook_count,
    hooked,
    logit_lens,
    patch,
    register_family,
    run_model,
)

ATOL = 1e-5
B = 2  # batch size of every case (conftest)


def _blocks(case, prefix: str) -> int:
    return len(block_sites(case.model, "resid_post", prefix))


def test_every_site_has_the_documented_shape(case):
    names = available_sites(case.model)
    acts = capture(case.model, case.inputs, names)
    for prefix, (T, D, H) in case.towers.items():
        pre = f"{prefix}." if prefix else ""
        L = _blocks(case, prefix)
        assert L == 2
        expected = {f"{pre}embed": (B, T, D), f"{pre}final": (B, T, D)}
        for i in range(L):
            for kind in ("resid_pre", "attn_out", "mlp_out", "resid_post"):
                expected[f"{pre}blocks.{i}.{kind}"] = (B, T, D)
            expected[f"{pre}blocks.{i}.attn.pattern"] = (B, H, T, T)
        for name, shape in expected.items():
            assert tuple(acts[name].shape) == shape, name
    if case.logits is None:
        assert "logits" not in names
    else:
        assert tuple(acts["logits"].shape) == case.logits


def _reference(case) -> dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """The model's own ``hidden_states`` and ``last_hidden_state`` per tower: an
    independent reading of the block inputs and of ``final``."""
    m, x = case.model, case.inputs
    with torch.no_grad():
        if case.name == "clip":
            out = m(**x, output_hidden_states=True)
            text, vision = out.text_model_output, out.vision_model_output
            return {
                "text": (text.hidden_states, text.last_hidden_state),
                "vision": (vision.hidden_states, vision.last_hidden_state),
            }
        if case.name == "whisper":
            out = m.model(**x, output_hidden_states=True)
            return {
                "encoder": (out.encoder_hidden_states, out.encoder_last_hidden_state),
                "decoder": (out.decoder_hidden_states, out.last_hidden_state),
            }
        out = m.base_model(**x, output_hidden_states=True)
        return {"": (out.hidden_states, out.last_hidden_state)}


def test_sites_match_the_models_own_hidden_states(case):
    if case.name == "fmlab-gpt":
        pytest.skip("fmlab's GPT has no output_hidden_states; its sites are its HookPoints")
    acts = capture(case.model, case.inputs)
    for prefix, (hidden, last) in _reference(case).items():
        pre = f"{prefix}." if prefix else ""
        for i in range(_blocks(case, prefix)):
            got = acts[f"{pre}blocks.{i}.resid_pre"]
            torch.testing.assert_close(got, hidden[i], atol=ATOL, rtol=0)
        torch.testing.assert_close(acts[f"{pre}final"], last, atol=ATOL, rtol=0)


def test_sublayer_outputs_are_what_is_added_to_the_residual(case):
    acts = capture(case.model, case.inputs)
    for prefix in case.towers:
        pre = f"{prefix}." if prefix else ""
        for i in range(_blocks(case, prefix)):
            get = lambda k, i=i, pre=pre: acts[f"{pre}blocks.{i}.{k}"]  # noqa: E731
            if case.pre_ln:
                total = get("resid_pre") + get("attn_out") + get("mlp_out")
                if f"{pre}blocks.{i}.cross_attn_out" in acts:
                    total = total + get("cross_attn_out")
            else:  # BERT: x = LN1(x + attn); out = LN2(x + mlp)
                layer = case.model.bert.encoder.layer[i]
                mid = layer.attention.output.LayerNorm(get("resid_pre") + get("attn_out"))
                total = layer.output.LayerNorm(mid + get("mlp_out"))
            torch.testing.assert_close(get("resid_post"), total, atol=ATOL, rtol=0)


def test_attention_patterns_are_probabilities(case):
    names = [n for n in available_sites(case.model) if n.endswith("attn.pattern")]
    before = getattr(getattr(case.model, "config", None), "_attn_implementation", None)
    acts = capture(case.model, case.inputs, names)
    assert getattr(getattr(case.model, "config", None), "_attn_implementation", None) == before
    for name in names:
        p = acts[name]
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]), atol=ATOL, rtol=0)
        if case.causal is not None and name.startswith(case.causal):
            assert torch.all(p.triu(diagonal=1) == 0), name  # no attention to the future


def test_hooks_are_removed_even_after_an_exception(case):
    names = available_sites(case.model)
    before = hook_count(case.model)  # transformers may keep hooks of its own
    impl = getattr(getattr(case.model, "config", None), "_attn_implementation", None)
    with hooked(case.model, read=names):
        assert hook_count(case.model) >= before + len(names)
    assert hook_count(case.model) == before
    with pytest.raises(RuntimeError, match="boom"), hooked(case.model, read=names):
        raise RuntimeError("boom")
    assert hook_count(case.model) == before
    assert getattr(getattr(case.model, "config", None), "_attn_implementation", None) == impl
    site = next(n for n in names if n.endswith("resid_post"))
    with pytest.raises(ZeroDivisionError), hooked(case.model, patch={site: lambda t: t}):
        1 / 0  # noqa: B018
    assert hook_count(case.model) == before


def _output(case, out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if getattr(out, "logits", None) is not None else out[0]


def test_patching_a_site_with_its_own_activation_changes_nothing(case):
    names = [n for n in available_sites(case.model) if not n.endswith("pattern")]
    acts = capture(case.model, case.inputs, names)
    with torch.no_grad():
        clean = _output(case, run_model(case.model, case.inputs))
    patched = _output(case, patch(case.model, case.inputs, acts))
    torch.testing.assert_close(patched, clean, atol=0, rtol=0)


def test_patching_the_last_residual_reproduces_the_other_inputs_logits(case, build_case):
    if case.logits is None:
        pytest.skip("no logits")
    tower = case.causal if case.causal is not None else ""
    last = block_sites(case.model, "resid_post", tower)[-1]
    other = build_case(case.name, seed=1).inputs
    corrupt = capture(case.model, other, [last, "logits"])
    clean = capture(case.model, case.inputs, ["logits"])["logits"]
    assert not torch.allclose(clean, corrupt["logits"])
    out = _output(case, patch(case.model, case.inputs, {last: corrupt[last]}))
    torch.testing.assert_close(out, corrupt["logits"], atol=ATOL, rtol=0)
    if len(case.logits) == 3:  # per-position heads: patch only the last position
        out = _output(case, patch(case.model, case.inputs, {last: corrupt[last]}, positions=[-1]))
        torch.testing.assert_close(out[:, -1], corrupt["logits"][:, -1], atol=ATOL, rtol=0)
        torch.testing.assert_close(out[:, :-1], clean[:, :-1], atol=ATOL, rtol=0)


def test_logit_lens_at_the_last_layer_is_the_models_logits(case):
    if case.causal is None and case.name != "bert":
        pytest.skip("no language-model head")
    lens = logit_lens(case.model, case.inputs, tower=case.causal or "")
    assert lens.logits.shape == (2, *lens.final_logits.shape)
    torch.testing.assert_close(lens.logits[-1], lens.final_logits, atol=ATOL, rtol=0)
    assert not torch.allclose(lens.logits[0], lens.final_logits, atol=1e-3)


def test_unknown_site_and_readonly_pattern_are_clear_errors(build_case):
    case = build_case("gpt2")
    with pytest.raises(UserInputError, match=r"Did you mean 'blocks\.0\.resid_post'"):
        capture(case.model, case.inputs, ["blocks.0.resid_pst"])
    with pytest.raises(UserInputError, match="can be read but not patched"):
        patch(case.model, case.inputs, {"blocks.0.attn.pattern": lambda p: p})
    with pytest.raises(UserInputError, match="shape"):
        patch(case.model, case.inputs, {"blocks.0.resid_post": torch.zeros(1, 2, 3)})
    assert hook_count(case.model) == 0


def test_lens_needs_an_output_head():
    import transformers as tf

    m = tf.BertModel(tf.BertConfig(num_hidden_layers=1, hidden_size=8, num_attention_heads=2,
                                   intermediate_size=8, vocab_size=20)).eval()  # fmt: skip
    with pytest.raises(UserInputError, match="needs an output head"):
        logit_lens(m, {"input_ids": torch.tensor([[1, 2, 3]])})


def test_unsupported_family_lists_known_ones_and_a_new_family_can_be_registered():
    import transformers as tf

    cfg = tf.GPTNeoConfig(
        num_layers=2,
        hidden_size=16,
        num_heads=2,
        vocab_size=50,
        max_position_embeddings=16,
        attention_types=[[["global"], 2]],
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tf.GPTNeoForCausalLM(cfg).eval()
    x = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedModelError) as err:
        capture(model, x)
    for fragment in ("gpt_neo", "gpt2", "whisper", "register_family"):
        assert fragment in str(err.value)
    with pytest.raises(UnsupportedModelError, match="Supported families"):
        capture(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    register_family(
        HFFamily(
            "test-gpt-neo",
            ("gpt_neo",),
            {
                "": Tower(
                    roots=("transformer",),
                    blocks="h",
                    block_sites={
                        "resid_pre": Site("", "input"),
                        "attn_out": Site("attn", index=0),
                        "mlp_out": Site("mlp"),
                        "resid_post": Site(""),
                    },
                    sites={"final": Site("{root}.ln_f")},
                    lens=("{root}.ln_f", "lm_head"),
                )
            },
            head={"logits": Site("lm_head")},
        )
    )
    acts = capture(model, x)
    torch.testing.assert_close(
        acts["blocks.1.resid_post"],
        acts["blocks.1.resid_pre"] + acts["blocks.1.attn_out"] + acts["blocks.1.mlp_out"],
    )
    lens = logit_lens(model, x)
    torch.testing.assert_close(lens.logits[-1], lens.final_logits, atol=ATOL, rtol=0)


def test_capture_with_grad_keeps_the_graph(build_case):
    """d logits / d resid_post of the last block, through the hooks, equals the gradient
    of the unembedding applied to it by hand (a closed form for a linear head)."""
    case = build_case("fmlab-gpt")
    site = "blocks.1.resid_post"
    acts = capture(case.model, case.inputs, [site, "logits"], grad=True)
    assert acts[site].requires_grad
    (g,) = torch.autograd.grad(acts["logits"][0, -1, 7], acts[site])
    x = acts[site].detach()[0, -1].requires_grad_()
    model = case.model
    (model.ln_final(x) @ model.W_U)[7].backward()
    torch.testing.assert_close(g[0, -1], x.grad)
    assert torch.count_nonzero(g[:, :-1]) == 0 and torch.count_nonzero(g[1]) == 0
