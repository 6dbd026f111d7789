"""SynthID-Text through transformers' processor: fmlab's generation is detected by the
offline mean-score test, another key is not, and text from transformers' own
``generate`` is detected on its generated ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fmlab.watermark import SynthID, generate

pytest.importorskip("transformers")


def test_null_rate_is_the_sampling_table_mean_and_g_values_are_bernoulli():
    s = SynthID(50, ngram_len=3, depth=6)
    q = s.null_rate(11)
    assert 0.49 < q < 0.51
    ids = np.random.default_rng(0).integers(0, 50, (1, 2000))
    r = s.detect_batch(ids, 11, dedupe=True)
    # distinct contexts: Binomial(n·depth, q) exactly; its p-value is not extreme
    assert 0.001 < r["p_value"][0] < 0.999
    assert r["n"][0] == len(
        np.unique(np.lib.stride_tricks.sliding_window_view(ids[0], 2)[:-1], axis=0)
    )


def test_generated_text_is_detected_and_another_key_is_not(bigram):
    s = SynthID(bigram.vocab, ngram_len=3, depth=8)
    prompts = torch.randint(0, bigram.vocab, (3, 4), generator=torch.Generator().manual_seed(0))
    out = generate(bigram, prompts, 150, s, 21, generator=torch.Generator().manual_seed(0))
    hits = s.detect_batch(out.tokens.numpy(), 21, 4)
    assert (hits["z"] > 4).all()
    assert (np.abs(s.detect_batch(out.tokens.numpy(), 22, 4)["z"]) < 3).all()
    plain = generate(bigram, prompts, 150, None, generator=torch.Generator().manual_seed(0))
    zs = s.detect_batch(plain.tokens.numpy(), 21, 4)["z"]
    assert (np.abs(zs) < 3).all()


def test_transformers_generate_is_detected():
    from transformers import SynthIDTextWatermarkingConfig

    from fmlab.models.hf import tiny

    s = SynthID(259, ngram_len=4, depth=8)
    lm = tiny("gpt2").model
    cfg = SynthIDTextWatermarkingConfig(ngram_len=4, keys=s.layer_keys(5))
    prompt = torch.tensor([list(b"A prompt ")])
    torch.manual_seed(0)
    ids = lm.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=True,
        top_k=0,
        max_new_tokens=120,
        min_new_tokens=120,
        pad_token_id=256,
        watermarking_config=cfg,
    )[0]
    generated = ids[prompt.shape[1] :]  # transformers starts the context from zeros
    det = s.detect(generated, 5)
    assert det.z > 4 and stats.norm.sf(det.z) < 1e-4
