"""The CPU fast path (assistant.vision.runtime.fast) against the default path, on tiny random checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from assistant import vision
from assistant.vision.errors import ModelNotFoundError
from assistant.vision.runtime.checkpoint import ARCHITECTURES, read_architecture
from assistant.vision.runtime.fast import (
    ABSORBED,
    BF16,
    CACHED,
    FP32,
    INT8,
    KEEP,
    SHARED,
    FastBlipTextSelfAttention,
    FastPlan,
    PackedLinear,
    RescoredLinear,
    apply_fast,
    default_plan,
    flop_formulas,
    load_fast,
    make_linear,
    read_safetensors,
)
from assistant.vision.runtime.fast.attention import _row_repeat
from assistant.vision.runtime.fast.plan import _probe
from assistant.vision.tasks.generation import GenerationSettings

GREEDY = GenerationSettings(decoding="greedy", max_new_tokens=6, min_new_tokens=6, no_repeat_ngram_size=0)
BEAM = GenerationSettings(decoding="beam", num_beams=3, max_new_tokens=6, min_new_tokens=6)


def _cls(path: Path) -> type:
    return ARCHITECTURES[read_architecture(path)][0]


def _fast_blip(path: Path, plan: FastPlan) -> vision.Blip:
    """A Blip whose model is ``plan``'s (vision.load(fast=True) always uses the machine's default plan)."""
    import dataclasses

    reference = vision.load(str(path))
    model, _ = load_fast(_cls(path), path, plan)
    return vision.Blip(dataclasses.replace(reference.checkpoint, model=model))


def _formats() -> list[str]:
    return [f for f in (BF16, INT8, FP32) if _probe(f)]


# --- the Linear replacements -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [BF16, INT8, FP32])
def test_fast_linear_matches_float32(fmt: str) -> None:
    if not _probe(fmt):
        pytest.skip(f"{fmt} kernels are not available on this CPU")
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(48, 64, generator=gen) * 0.05, torch.randn(48, generator=gen)
    x = torch.randn(2, 5, 64, generator=gen)
    layer = make_linear(weight, bias, fmt, torch.float32)
    with torch.inference_mode():
        got, want = layer(x), nn.functional.linear(x, weight, bias)
    assert got.shape == want.shape and got.dtype == torch.float32
    tolerance = {BF16: 2e-2, INT8: 5e-2, FP32: 1e-5}[fmt]
    assert (got - want).abs().max().item() <= tolerance * want.abs().max().item()


def test_packed_linear_keeps_its_compute_dtype_unless_told() -> None:
    if not _probe(BF16):
        pytest.skip("no bfloat16 kernels here")
    layer = PackedLinear(torch.randn(8, 4), None, torch.bfloat16, None)
    with torch.inference_mode():
        assert layer(torch.randn(3, 4)).dtype == torch.bfloat16


def test_plan_rejects_unknown_formats() -> None:
    with pytest.raises(ValueError, match="format"):
        FastPlan(image="fp8")
    with pytest.raises(ValueError, match="cross"):
        FastPlan(cross="sometimes")
    assert default_plan("cuda") == FastPlan(image=KEEP, text=KEEP, encoder=KEEP, head=KEEP)


def test_without_bfloat16_units_the_decoder_goes_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.vision.runtime.fast import plan

    monkeypatch.setattr(plan, "has_fast_bf16", lambda: False)
    chosen = default_plan()
    # memory-bound float32 decoding is what int8 weights speed up (tests/benchmarks/README.md)
    fmt = INT8 if _probe(INT8) else FP32
    assert (chosen.image, chosen.text, chosen.encoder) == (fmt, fmt, fmt)
    assert plan.fast_by_default() is _probe(INT8)


@pytest.mark.parametrize("amx", [True, False], ids=["amx", "avx512-bf16"])
def test_bfloat16_units_without_amx_run_int8(monkeypatch: pytest.MonkeyPatch, amx: bool) -> None:
    """AMX multiplies bfloat16 tiles (the plan measured 3.4x transformers there); AVX512-BF16 alone only
    doubles float32's dot-product rate, and int8 was faster there (tests/benchmarks/README.md)."""
    from assistant.vision.runtime.fast import plan

    monkeypatch.setattr(plan, "has_fast_bf16", lambda: True)
    monkeypatch.setattr(plan, "has_amx", lambda: amx)
    chosen = default_plan()
    if amx or not _probe(INT8):
        assert (chosen.image, chosen.text) == (BF16, BF16)
    else:
        assert (chosen.image, chosen.text, chosen.encoder, chosen.head) == (INT8, INT8, INT8, INT8)
    assert plan.fast_by_default()


@pytest.mark.parametrize("scan", [BF16, INT8])
def test_rescored_head_returns_exact_top_logits(scan: str) -> None:
    if not _probe(scan):
        pytest.skip(f"no {scan} kernels here")
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(500, 32, generator=gen) * 0.02, torch.randn(500, generator=gen) * 0.01
    x = torch.randn(3, 4, 32, generator=gen)
    head = RescoredLinear(weight, bias, scan)
    with torch.inference_mode():
        got, want = head(x), nn.functional.linear(x, weight, bias)
    top = want.topk(5, dim=-1).indices
    assert torch.allclose(got.gather(-1, top), want.gather(-1, top), atol=1e-6)  # exact where it decides
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    assert (got - want).abs().max() < 0.05 * want.abs().max()  # the rest: the scan's rounding


def test_flop_formulas_count_the_fast_kernels() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    layer = make_linear(torch.randn(16, 32), torch.zeros(16), FP32, None)
    q = torch.randn(1, 2, 10, 8)
    with FlopCounterMode(display=False, custom_mapping=flop_formulas()) as counter, torch.inference_mode():
        layer(torch.randn(3, 32))
        nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 2 * 3 * 32 * 16 + 4 * 2 * 10 * 10 * 8


# --- image keys/values shared across beams --------------------------------------------------------------
def test_row_repeat_finds_consecutive_copies() -> None:
    a, b = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    assert _row_repeat(torch.cat([a, a, a, b, b, b])) == 3
    assert _row_repeat(torch.cat([a, b])) == 1
    assert _row_repeat(torch.cat([a, a, b])) == 1  # uneven runs: no sharing
    assert _row_repeat(torch.cat([a, b, a, b])) == 1  # interleaved, not consecutive
    assert _row_repeat(a) == 1


@pytest.mark.parametrize("fmt", [FP32, BF16])
def test_cross_attention_modes_agree(tiny_models: dict[str, Path], fmt: str) -> None:
    """Absorbed projections, keys/values shared per image, and transformers' per-row cache: one result."""
    if not _probe(fmt):
        pytest.skip(f"no {fmt} kernels here")
    path = tiny_models["caption"]
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 5, 32, generator=gen)
    states = images.repeat_interleave(3, dim=0)  # what beam search hands the decoder
    hidden = torch.randn(6, 2, 32, generator=gen)
    outputs = {}
    for mode in (ABSORBED, SHARED, CACHED):
        model, _ = load_fast(_cls(path), path, FastPlan(image=fmt, text=fmt, encoder=fmt, cross=mode))
        attention = model.text_decoder.bert.encoder.layer[0].crossattention.self
        assert isinstance(attention, FastBlipTextSelfAttention) and attention.cross_mode == mode
        with torch.inference_mode():
            outputs[mode] = attention(hidden, encoder_hidden_states=states)[0].float()
    tolerance = 1e-5 if fmt == FP32 else 2e-2
    assert torch.allclose(outputs[ABSORBED], outputs[CACHED], atol=tolerance)
    assert torch.allclose(outputs[SHARED], outputs[CACHED], atol=tolerance)


def test_cross_attention_honours_an_encoder_padding_mask(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["caption"]
    gen = torch.Generator().manual_seed(2)
    states, hidden = torch.randn(2, 5, 32, generator=gen), torch.randn(2, 3, 32, generator=gen)
    mask = torch.zeros(2, 1, 1, 5)
    mask[1, ..., 3:] = torch.finfo(torch.float32).min  # the second image's last two tokens are padding
    outputs = []
    for mode in (ABSORBED, SHARED, CACHED):
        model, _ = load_fast(_cls(path), path, FastPlan(image=FP32, text=FP32, encoder=FP32, cross=mode))
        attention = model.text_decoder.bert.encoder.layer[0].crossattention.self
        with torch.inference_mode():
            outputs.append(attention(hidden, encoder_hidden_states=states, encoder_attention_mask=mask)[0])
            unpadded = attention(hidden[1:], encoder_hidden_states=states[1:, :3])[0]
        assert torch.allclose(outputs[-1][1:], unpadded, atol=1e-5)  # padding changes nothing
    assert torch.allclose(outputs[0], outputs[2], atol=1e-5)
    assert torch.allclose(outputs[1], outputs[2], atol=1e-5)


def test_image_keys_are_projected_once_per_image_or_never(tiny_models: dict[str, Path], images: list) -> None:
    """transformers projects the image keys once per beam, and blipkit's confidence pass once more; the
    shared mode once per image and pass; the absorbed mode (the default) never."""
    path, fmt = tiny_models["caption"], _formats()[0]
    blips = {"default": vision.load(str(path)), "absorbed": vision.load(str(path), fast=True),
             "shared": _fast_blip(path, FastPlan(image=fmt, text=fmt, encoder=fmt, cross=SHARED))}
    calls: dict[str, list[int]] = {name: [] for name in blips}
    for name, blip in blips.items():
        key = blip.checkpoint.model.text_decoder.bert.encoder.layer[0].crossattention.self.key
        key.register_forward_hook(lambda m, args, out, name=name: calls[name].append(args[0].shape[0]))
        blip.caption(images, settings=BEAM)
    n = len(images)
    assert calls == {"default": [3 * n, n], "absorbed": [], "shared": [n, n]}


# --- loading -----------------------------------------------------------------------------------------
def test_streaming_reader_matches_safetensors(tiny_models: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    file = tiny_models["builtin"] / "model.safetensors"
    want = load_file(str(file))
    got = dict(read_safetensors(file))
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_reader_refuses_a_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelNotFoundError):
        list(read_safetensors(bad))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 400]}}).encode()
    bad.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(ModelNotFoundError, match="offsets"):
        list(read_safetensors(bad))


@pytest.mark.parametrize("kind", ["caption", "vqa", "itm", "builtin"])
def test_loader_without_conversion_reproduces_from_pretrained(tiny_models: dict[str, Path], kind: str
                                                              ) -> None:
    path = tiny_models[kind]
    want = _cls(path).from_pretrained(path).eval()
    got, plan = load_fast(_cls(path), path, FastPlan(image=KEEP, text=KEEP, encoder=KEEP, head=KEEP))
    assert plan.image == plan.text == KEEP
    want_state, got_state = want.state_dict(), got.state_dict()
    assert want_state.keys() == got_state.keys()
    for name, tensor in want_state.items():
        assert torch.equal(tensor, got_state[name]), name
    for name, buffer in want.named_buffers():
        assert torch.equal(buffer, got.get_buffer(name)), name


def test_tied_lm_head_is_built_from_the_word_embeddings(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["caption"]
    kept, _ = load_fast(_cls(path), path, FastPlan(image=KEEP, text=KEEP, encoder=KEEP, head=KEEP))
    decoder = kept.text_decoder
    assert decoder.cls.predictions.decoder.weight is decoder.bert.embeddings.word_embeddings.weight
    head = FastPlan(image=FP32, text=FP32, encoder=FP32, head=_formats()[0]).head
    packed, _ = load_fast(_cls(path), path, FastPlan(image=FP32, text=FP32, encoder=FP32, head=head))
    decoder = packed.text_decoder.cls.predictions.decoder
    assert isinstance(decoder, RescoredLinear if head != FP32 else PackedLinear)
    if head != FP32:  # re-scores from the word embedding itself: no float32 copy
        embedding = packed.text_decoder.bert.embeddings.word_embeddings.weight
        assert decoder._weight.data_ptr() == embedding.data_ptr()


def test_fast_load_keeps_no_float32_linear_weights(tiny_models: dict[str, Path]) -> None:
    if not _probe(BF16):
        pytest.skip("no bfloat16 kernels here")
    path = tiny_models["caption"]
    model, _ = load_fast(_cls(path), path, FastPlan(image=BF16, text=BF16, encoder=BF16))
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    left = [n for n in linears if n.startswith(("vision_model.encoder", "text_decoder"))]
    # only the image key/value projections, which the absorbed cross-attention reads in place
    assert left and all(n.endswith(("crossattention.self.key", "crossattention.self.value")) for n in left)
    shared, _ = load_fast(_cls(path), path, FastPlan(image=BF16, text=BF16, encoder=BF16, cross=SHARED))
    assert not [n for n, m in shared.named_modules() if type(m) is nn.Linear and n.startswith("text_decoder")]


def test_fast_rejects_a_non_float32_dtype(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="precision"):
        vision.load(str(tiny_models["caption"]), fast=True, dtype="bfloat16")


def test_fast_checkpoint_says_what_plan_it_runs(tiny_models: dict[str, Path]) -> None:
    blip = vision.load(str(tiny_models["itm"]), fast=True)
    assert blip.checkpoint.extras["fast"] == default_plan().describe() | {
        "image": blip.checkpoint.extras["fast"]["image"], "text": blip.checkpoint.extras["fast"]["text"]}
    assert "fast" not in vision.load(str(tiny_models["itm"])).checkpoint.extras


def test_apply_fast_equals_load_fast(tiny_models: dict[str, Path], images: list) -> None:
    path = tiny_models["itm"]
    plan = FastPlan(image=_formats()[0], text=_formats()[0], encoder=_formats()[0])
    streamed = _fast_blip(path, plan)
    converted = vision.load(str(path))
    apply_fast(converted.checkpoint.model, plan)
    assert np.array_equal(streamed.embed_images(images), converted.embed_images(images))


# --- outputs against the default path --------------------------------------------------------------------
def test_float32_plan_reproduces_the_default_path_exactly(tiny_models: dict[str, Path], images: list) -> None:
    """Packed float32 weights, fused attention and shared image keys change no token."""
    plan = FastPlan(image=FP32, text=FP32, encoder=FP32)
    for kind in ("caption", "builtin"):
        default, fast = vision.load(str(tiny_models[kind])), _fast_blip(tiny_models[kind], plan)
        for settings in (GREEDY, BEAM):
            want = [r.caption for r in default.caption(images, settings=settings)]
            assert [r.caption for r in fast.caption(images, settings=settings)] == want
    default, fast = vision.load(str(tiny_models["vqa"])), _fast_blip(tiny_models["vqa"], plan)
    question = "what is it?"
    assert [r.answer for r in fast.ask(images, question)] == [r.answer for r in default.ask(images, question)]


@pytest.mark.parametrize("kind", ["itm", "builtin"])
def test_fast_embeddings_and_matching_stay_close(tiny_models: dict[str, Path], images: list, kind: str
                                                 ) -> None:
    default, fast = vision.load(str(tiny_models[kind])), vision.load(str(tiny_models[kind]), fast=True)
    texts = ["a dog on the grass", "two cats"]
    cos_images = np.sum(default.embed_images(images) * fast.embed_images(images), axis=1)
    cos_texts = np.sum(default.embed_texts(texts) * fast.embed_texts(texts), axis=1)
    assert cos_images.min() > 0.995 and cos_texts.min() > 0.995
    want = np.array([r.score for r in default.match(images, texts)])
    got = np.array([r.score for r in fast.match(images, texts)])
    assert np.abs(want - got).max() < 0.02


@pytest.mark.parametrize("kind", ["caption", "vqa", "builtin"])
def test_fast_decoder_logits_stay_close(tiny_models: dict[str, Path], images: list, kind: str) -> None:
    """Fed the same tokens and image, the fast decoder's next-token distribution is the default's."""
    default, fast = vision.load(str(tiny_models[kind])), vision.load(str(tiny_models[kind]), fast=True)
    ids = torch.tensor([[default.checkpoint.text_config.bos_token_id, 10, 20, 30, 40, 50]] * len(images))
    probs = []
    for blip in (default, fast):
        with torch.inference_mode():
            states = blip.encode_images(images).embeds
            logits = blip.checkpoint.model.text_decoder(input_ids=ids, encoder_hidden_states=states).logits
        probs.append(torch.softmax(logits.float(), dim=-1))
    assert (probs[0] - probs[1]).abs().max().item() < 0.02
    assert (probs[0].argmax(-1) == probs[1].argmax(-1)).float().mean().item() >= 0.8


def test_eager_attention_variant_runs(tiny_models: dict[str, Path], images: list) -> None:
    """With fused attention off, BLIP's own attention gets float32 from every fast layer."""
    fmt = _formats()[0]
    for kind in ("caption", "builtin"):
        default = vision.load(str(tiny_models[kind]))
        fast = _fast_blip(tiny_models[kind], FastPlan(image=fmt, text=fmt, encoder=fmt, sdpa=False))
        assert all(r.ok and r.caption for r in fast.caption(images, settings=BEAM))
        want = np.array([r.score for r in default.match(images, "a dog")]) if kind == "builtin" else None
        if want is not None:
            assert np.abs(np.array([r.score for r in fast.match(images, "a dog")]) - want).max() < 0.02


def test_fast_caption_results_are_complete(tiny_models: dict[str, Path], images: list, tmp_path: Path
                                           ) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    fast = vision.load(str(tiny_models["builtin"]), fast=True)
    results = fast.caption([*images, str(bad)], settings=BEAM)
    assert [r.ok for r in results] == [True] * len(images) + [False]
    assert all(r.caption and 0 < r.confidence <= 1 for r in results[:-1])


# --- memory levers -----------------------------------------------------------------------------------------
def test_int8_weights_are_quantized_block_by_block_as_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _probe(INT8):
        pytest.skip("no int8 kernels here")
    from assistant.vision.runtime.fast import Int8Linear

    weight = torch.randn(37, 24, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    monkeypatch.setattr(Int8Linear, "_BLOCK", 5)  # 37 rows: seven full blocks and a short one
    blocked = Int8Linear(weight, None, None).inner.weight()
    w = weight.float()
    scales = (w.abs().amax(dim=1) / 127.0).double()
    whole = torch.quantize_per_channel(w, scales, torch.zeros(37, dtype=torch.long), 0, torch.qint8)
    assert torch.equal(blocked.int_repr(), whole.int_repr())
    assert torch.allclose(blocked.q_per_channel_scales(), whole.q_per_channel_scales())


def test_an_int8_layer_packs_its_weight_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packing is a tenth of the built-in model's load and a third of BLIP-base's: built at full size,
    torch's dynamic Linear first packed an empty weight as large as the real one."""
    if not _probe(INT8):
        pytest.skip("no int8 kernels here")
    from assistant.vision.runtime.fast import Int8Linear

    packed: list[tuple[int, ...]] = []
    prepack = torch.ops.quantized.linear_prepack
    monkeypatch.setattr(torch.ops.quantized, "linear_prepack",
                        lambda w, b=None: packed.append(tuple(w.shape)) or prepack(w, b))
    gen = torch.Generator().manual_seed(4)
    weight, bias, x = torch.randn(40, 24, generator=gen), torch.randn(40, generator=gen), torch.randn(3, 24)
    layer = Int8Linear(weight, bias, None)
    assert [s for s in packed if s != (1, 1)] == [(40, 24)]
    assert (layer.inner.in_features, layer.inner.out_features) == (24, 40)
    with torch.inference_mode():
        ref = torch.nn.functional.linear(x, weight, bias)
        assert (layer(x) - ref).abs().max() < 0.05 * ref.abs().max()  # int8's rounding, not another layer


@pytest.mark.parametrize("kind", ["itm", "vqa", "builtin"])
def test_encoder_layers_follow_their_own_format(tiny_models: dict[str, Path], kind: str) -> None:
    """Text-encoder layers run once per text, so the plan may store them apart from the decoder's; layers
    the built-in model shares between its encoder and decoder follow the decoder's format."""
    if not _probe(INT8):
        pytest.skip("no int8 kernels here")
    from assistant.vision.runtime.fast import Int8Linear

    path = tiny_models[kind]
    model, _ = load_fast(_cls(path), path, FastPlan(image=FP32, text=FP32, encoder=INT8, head=FP32))
    in_decoder = {id(m) for m in model.text_decoder.modules()} if hasattr(model, "text_decoder") else set()
    int8 = [n for n, m in model.named_modules(remove_duplicate=False) if isinstance(m, Int8Linear)]
    assert int8 and all(n.startswith("text_encoder.") for n in int8)
    assert not [n for n in int8 if id(model.get_submodule(n)) in in_decoder]
    packed = [n for n, m in model.text_encoder.named_modules() if isinstance(m, PackedLinear)]
    assert bool(packed) == (kind == "builtin")  # only shared layers stay float32 in the encoder


def test_bfloat16_plan_keeps_lookup_tables_and_image_kv_in_bfloat16(tiny_models: dict[str, Path]) -> None:
    if not _probe(BF16):
        pytest.skip("no bfloat16 kernels here")
    from assistant.vision.runtime.fast import WideEmbedding

    path = tiny_models["vqa"]
    model, _ = load_fast(_cls(path), path, FastPlan(image=BF16, text=BF16, encoder=BF16))
    for tower in (model.text_encoder, model.text_decoder.bert):
        words = tower.embeddings.word_embeddings
        assert isinstance(words, WideEmbedding) and words.weight.dtype == torch.bfloat16
        assert words(torch.tensor([[1, 2]])).dtype == torch.float32  # the text stream stays float32
        cross = tower.encoder.layer[0].crossattention.self
        assert cross.key.weight.dtype == cross.value.weight.dtype == torch.bfloat16
    # the LM head re-scores from the bfloat16 table itself: no float32 copy of it anywhere
    head = model.text_decoder.cls.predictions.decoder
    if isinstance(head, RescoredLinear):
        assert head._weight.data_ptr() == model.text_decoder.bert.embeddings.word_embeddings.weight.data_ptr()


def test_fast_path_runs_the_vision_encoder_a_few_images_at_a_time(tiny_models: dict[str, Path], images: list
                                                                   ) -> None:
    from assistant.vision import defaults
    from assistant.vision.runtime.encoding import encode_images

    calls: dict[str, list[int]] = {"default": [], "fast": []}
    for name in calls:
        blip = vision.load(str(tiny_models["itm"]), fast=name == "fast")
        blip.checkpoint.model.vision_model.register_forward_hook(
            lambda module, args, kwargs, out, name=name: calls[name].append(len(kwargs["pixel_values"])),
            with_kwargs=True,
        )
        feats = encode_images(blip.checkpoint, images, batch_size=len(images))
        assert feats.embeds.shape[0] == len(images)
    assert calls["default"] == [len(images)]
    assert sum(calls["fast"]) == len(images) and max(calls["fast"]) <= defaults.FAST_VISION_BATCH


# --- the default --------------------------------------------------------------------------------------------
def test_the_default_is_fast_where_its_quality_was_measured(tiny_models: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.vision.runtime.checkpoint import use_fast
    from assistant.vision.runtime.fast import has_fast_bf16

    monkeypatch.delenv("BLIP_ASSISTANT_FAST", raising=False)
    measured = has_fast_bf16() or _probe(INT8)  # bfloat16 units, or int8 kernels (its plan there)
    assert use_fast(None, "cpu", torch.float32) is measured
    assert use_fast(None, "cpu", torch.bfloat16) is False  # an explicit dtype is the user's choice
    assert use_fast(None, "cuda", torch.float32) is False  # the plan is a no-op there
    assert use_fast(False, "cpu", torch.float32) is False and use_fast(True, "cuda", torch.float32) is True
    assert ("fast" in vision.load(str(tiny_models["itm"])).checkpoint.extras) is measured
    monkeypatch.setenv("BLIP_ASSISTANT_FAST", "1")
    assert use_fast(None, "cuda", torch.float32) is True
    assert use_fast(None, "cpu", torch.bfloat16) is False
    assert "fast" in vision.load(str(tiny_models["itm"])).checkpoint.extras
    monkeypatch.setenv("BLIP_ASSISTANT_FAST", "0")
    assert use_fast(None, "cpu", torch.float32) is False
    assert "fast" not in vision.load(str(tiny_models["itm"])).checkpoint.extras
    monkeypatch.setenv("BLIP_ASSISTANT_FAST", "sometimes")
    with pytest.raises(ValueError, match="BLIP_ASSISTANT_FAST"):
        use_fast(None, "cpu", torch.float32)


def test_folded_batchnorm_trunk_computes_the_same_features() -> None:
    from assistant.vision.models.builtin.efficientnet_lite import EfficientNetLite

    torch.manual_seed(0)
    trunk = EfficientNetLite("lite0").eval()
    for module in trunk.modules():  # non-trivial statistics, as trained weights have
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    pixels = torch.randn(2, 3, 67, 80)  # odd sizes: asymmetric and symmetric padding both occur
    with torch.no_grad():
        want = trunk(pixels)
        trunk.fold_batchnorm()
        assert not any(isinstance(m, nn.BatchNorm2d) for m in trunk.modules())
        torch.testing.assert_close(trunk(pixels), want, rtol=1e-4, atol=1e-4)
        trunk.fold_batchnorm()  # a second call changes nothing
        torch.testing.assert_close(trunk(pixels), want, rtol=1e-4, atol=1e-4)


def test_fast_builtin_folds_its_trunk_only_on_reduced_precision_plans(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["builtin"]

    def norms(plan: FastPlan) -> int:
        model, _ = load_fast(_cls(path), path, plan)
        return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    assert norms(FastPlan(image=FP32, text=FP32, encoder=FP32)) > 0
    if _probe(BF16):
        assert norms(FastPlan(image=BF16, text=BF16, encoder=BF16)) == 0
