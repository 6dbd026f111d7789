"""Interop with ``transformers``: text watermarked by its built-in KGW processor is
detected by fmlab, fmlab's text by its ``WatermarkDetector``, and fmlab's processor
inside ``model.generate`` samples exactly what the built-in one samples."""

from __future__ import annotations

import pytest
import torch

from fmlab.models.hf import tiny
from fmlab.watermark import KGW, generate, hf_next, hf_processor

transformers = pytest.importorskip("transformers")
KEY, T = 15485863, 200


@pytest.fixture(scope="module")
def lm():
    return tiny("gpt2").model


def _prompt() -> torch.Tensor:
    return torch.tensor([list(b"The watermark test ")])


def _hf_generate(lm, **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    return lm.generate(
        _prompt(),
        attention_mask=torch.ones_like(_prompt()),
        do_sample=True,
        max_new_tokens=T,
        min_new_tokens=T,
        pad_token_id=256,
        top_k=0,  # the built-in watermark runs after top-k, a custom processor before
        **kwargs,
    )[0]


def test_transformers_kgw_text_is_detected_by_fmlab(lm):
    from transformers import WatermarkingConfig

    cfg = WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=KEY)
    ids = _hf_generate(lm, watermarking_config=cfg)
    P = _prompt().shape[1]
    scheme = KGW(259, 0.25, 2.0, "lefthash")
    hit = scheme.detect(ids, KEY, start=P)
    assert hit.n_scored >= 0.9 * T and hit.z > 4, hit
    assert abs(scheme.detect(ids, KEY + 1, start=P).z) < 3  # another key: nothing


def test_fmlab_kgw_text_is_detected_by_transformers(lm):
    from transformers import WatermarkDetector, WatermarkingConfig

    scheme = KGW(259, 0.25, 2.0, "lefthash")
    out = generate(
        hf_next(lm), _prompt(), T, scheme, KEY, generator=torch.Generator().manual_seed(1)
    )
    cfg = WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=KEY)
    detector = WatermarkDetector(lm.config, "cpu", cfg, ignore_repeated_ngrams=True)
    res = detector(out.generated, return_dict=True)
    assert res.num_tokens_scored[0] >= 0.9 * (T - 1) and res.z_score[0] > 4


def test_fmlab_processor_samples_what_the_builtin_samples(lm):
    from transformers import LogitsProcessorList, WatermarkingConfig

    builtin = _hf_generate(lm, watermarking_config=WatermarkingConfig(hashing_key=KEY))
    ours = _hf_generate(
        lm,
        logits_processor=LogitsProcessorList([hf_processor(KGW(259, 0.25, 2.0, "lefthash"), KEY)]),
    )
    assert torch.equal(builtin, ours)
