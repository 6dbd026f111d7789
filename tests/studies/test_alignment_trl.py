"""fmlab's DPO and IPO losses against ``trl``'s ``DPOTrainer`` on the same batch, policy and
reference (a tiny GPT-2 and a word-level tokenizer built in memory; offline). ``trl`` is not
a dependency of fmlab: without it this test is skipped and the closed-form anchors in
test_alignment.py stand alone. Checked with trl 1.16.0."""

from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
tokenizers = pytest.importorskip("tokenizers")

from fmlab.studies.alignment.losses import dpo_loss, ipo_loss  # noqa: E402


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>"] + [f"w{i}" for i in range(14)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


@torch.no_grad()
def _logps(model, batch) -> torch.Tensor:
    """Summed log-probabilities of the completion tokens (EOS included), per row."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].float(), -1)
    tok = lp.gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (tok * batch["completion_mask"][:, 1:]).sum(1)


@pytest.mark.parametrize(("loss_type", "ours"), [("sigmoid", dpo_loss), ("ipo", ipo_loss)])
def test_losses_equal_trl_dpo_trainer(tmp_path, loss_type, ours):
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import DPOConfig, DPOTrainer

    cfg = GPT2Config(vocab_size=16, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    model, ref = GPT2LMHeadModel(cfg).eval(), GPT2LMHeadModel(cfg).eval()
    ds = Dataset.from_list(
        [
            {"prompt": "w1 w2", "chosen": " w3 w4 w5", "rejected": " w6 w7"},
            {"prompt": "w8", "chosen": " w9", "rejected": " w10 w11 w12"},
        ]
    )
    beta = 0.3
    args = DPOConfig(
        output_dir=str(tmp_path),
        beta=beta,
        loss_type=[loss_type],
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        precompute_ref_log_probs=False,
        max_length=None,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=_tokenizer()
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = float(trainer.compute_loss(trainer.model, batch))
    pi_w, pi_l = _logps(trainer.model, batch).chunk(2)
    ref_w, ref_l = _logps(trainer.ref_model, batch).chunk(2)
    if loss_type == "ipo":  # trl averages IPO's log-ratios over the completion's tokens
        n_w, n_l = batch["completion_mask"].sum(1).float().chunk(2)
        pi_w, ref_w, pi_l, ref_l = pi_w / n_w, ref_w / n_w, pi_l / n_l, ref_l / n_l
    mine = float(ours(pi_w, pi_l, ref_w, ref_l, beta).mean())
    assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    assert abs(mine - float(ours(pi_w, pi_l, ref_w, ref_l, 2 * beta).mean())) > 1e-3
