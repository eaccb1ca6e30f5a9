"""The ITM negative sampler: hard negatives by ITC similarity, optionally mixed with uniform ones."""

from __future__ import annotations

import torch

from assistant.training.objectives import _sample_negatives


def _draws(random_share: float, n: int = 4000) -> torch.Tensor:
    torch.manual_seed(0)
    # 4 items; items 0 and 1 show the same image. Row 0 finds item 3 far more similar than item 2.
    sim = torch.tensor([[9.0, 9.0, 0.0, 12.0]]).repeat(n, 1)
    same = torch.tensor([[True, True, False, False]]).repeat(n, 1)
    return _sample_negatives(sim, same, random_share)


def test_hard_negatives_follow_itc_similarity_and_never_the_same_image() -> None:
    picks = _draws(0.0)
    assert set(picks.tolist()) <= {2, 3}
    assert (picks == 3).float().mean() > 0.9  # softmax weight of item 3 is e^12 / (e^12 + 1)


def test_random_share_mixes_in_uniform_negatives() -> None:
    picks = _draws(0.5)
    assert set(picks.tolist()) <= {2, 3}
    share_easy = (picks == 2).float().mean().item()
    assert 0.2 < share_easy < 0.3  # half the draws are uniform over {2, 3}: about a quarter land on 2
    uniform = _draws(1.0)
    assert 0.45 < (uniform == 2).float().mean().item() < 0.55


def test_decoder_loss_equals_the_decoders_own_loss_on_padded_batches(tiny_models) -> None:
    from assistant.training.objectives import decoder_loss
    from assistant.vision.models.builtin.modeling import BuiltinBlipModel

    model = BuiltinBlipModel.from_pretrained(tiny_models["builtin"]).eval()
    text = model.config.text_config
    torch.manual_seed(0)
    ids = torch.randint(5, text.vocab_size, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    ids = ids.masked_fill(mask == 0, text.pad_token_id)
    states = torch.randn(3, 5, model.config.text_config.encoder_hidden_size)
    states_mask = torch.ones(3, 5, dtype=torch.long)
    got = decoder_loss(model, ids, mask, states, states_mask, text.bos_token_id, text.pad_token_id, 0.1)
    # Reference: the whole logit grid from the decoder, padding masked out by ignore_index.
    dec = ids.clone()
    dec[:, 0] = text.bos_token_id
    logits = model.text_decoder(input_ids=dec, attention_mask=mask, encoder_hidden_states=states,
                                encoder_attention_mask=states_mask).logits
    labels = dec[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    want = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
        label_smoothing=0.1,
    )
    torch.testing.assert_close(got, want)
