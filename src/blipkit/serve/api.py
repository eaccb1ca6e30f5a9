"""The model endpoints under ``/v1``: caption, ask, match, embed, tag and moderate.

Each one reads its body (JSON or multipart), checks texts and decodes images before queueing — so a bad
input fails only its own request, with a 4xx — then hands the work to the batcher and shapes the answer.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request

from blipkit.blip import Blip
from blipkit.errors import BlipkitError
from blipkit.runtime.checkpoint import CAPTION as CAPTION_HEAD
from blipkit.runtime.checkpoint import ITC as ITC_HEAD
from blipkit.runtime.checkpoint import ITM as ITM_HEAD
from blipkit.runtime.checkpoint import VQA as VQA_HEAD
from blipkit.runtime.encoding import check_text
from blipkit.serve import inference
from blipkit.serve.inference import AskJob, EmbedJob, MatchJob
from blipkit.serve.inputs import decode_images, parse_request
from blipkit.serve.openapi import IMAGE_ERROR_RESPONSES, body_spec
from blipkit.serve.schemas import (
    AnswerItem,
    AskRequest,
    AskResponse,
    CaptionItem,
    CaptionRequest,
    CaptionResponse,
    EmbedRequest,
    EmbedResponse,
    MatchItem,
    MatchRequest,
    MatchResponse,
    ModerateRequest,
    ModerateResponse,
    ModerationItem,
    Tag,
    TagItem,
    TagRequest,
    TagResponse,
)
from blipkit.serve.state import ServerState, server_state
from blipkit.tasks.generation import GenerationSettings

BODY_MODELS = [CaptionRequest, AskRequest, MatchRequest, EmbedRequest, TagRequest, ModerateRequest]


def _texts(values: list[str], what: str) -> list[str]:
    for i, text in enumerate(values):
        check_text(text, f"{what}[{i}]")
    return values


def _ready_for(request: Request, head: str) -> tuple[ServerState, Blip]:
    """The server state and model, once the model is loaded and has ``head`` (else 503 / 501)."""
    state = server_state(request)
    blip, _ = state.require_ready()
    blip.checkpoint.require(head)
    return state, blip


def _model_name(request: Request) -> str:
    state = server_state(request)
    return state.blip.checkpoint.name if state.blip is not None else state.settings.model


def build_router() -> APIRouter:
    """The ``/v1`` model endpoints (auth is added by the app)."""
    router = APIRouter(prefix="/v1", tags=["model"], responses=IMAGE_ERROR_RESPONSES)

    @router.post("/caption", response_model=CaptionResponse, openapi_extra=body_spec(CaptionRequest),
                 summary="Caption images")
    async def caption(request: Request) -> CaptionResponse:
        """A caption (and its confidence) for each image. ``max_new_tokens`` is capped at what the model's
        position embeddings allow after the prompt."""
        state, _ = _ready_for(request, CAPTION_HEAD)
        parsed = await parse_request(request, CaptionRequest, state.settings)
        body = parsed.body
        if body.prompt is not None:
            check_text(body.prompt, "prompt")
        try:
            settings = GenerationSettings(decoding=body.decoding, num_beams=body.num_beams,  # type: ignore[arg-type]
                                          max_new_tokens=body.max_new_tokens)
        except ValueError as exc:
            raise BlipkitError(str(exc)) from None
        images = await decode_images(parsed.images, state.settings)
        results = await state.run(inference.CAPTION, (body.prompt, settings), images, len(images))
        return CaptionResponse(model=_model_name(request), results=[
            CaptionItem(index=i, caption=r.caption or "", confidence=float(r.confidence or 0.0))
            for i, r in enumerate(results)
        ])

    @router.post("/ask", response_model=AskResponse, openapi_extra=body_spec(AskRequest),
                 summary="Answer a question about images")
    async def ask(request: Request) -> AskResponse:
        """The answer to ``question`` for each image; with ``choices``, the best-scored choice."""
        state, _ = _ready_for(request, VQA_HEAD)
        parsed = await parse_request(request, AskRequest, state.settings)
        body = parsed.body
        check_text(body.question, "question")
        choices = tuple(dict.fromkeys(_texts(body.choices, "choices"))) if body.choices else None
        images = await decode_images(parsed.images, state.settings)
        results = await state.run(inference.ASK, choices, AskJob(images, body.question), len(images))
        return AskResponse(model=_model_name(request), results=[
            AnswerItem(index=i, question=r.question, answer=r.answer or "",
                       confidence=float(r.confidence or 0.0), scores=r.scores)
            for i, r in enumerate(results)
        ])

    @router.post("/match", response_model=MatchResponse, openapi_extra=body_spec(MatchRequest),
                 summary="Score how well texts describe images")
    async def match(request: Request) -> MatchResponse:
        """ITM probability for every (image, text) pair."""
        state, _ = _ready_for(request, ITM_HEAD)
        parsed = await parse_request(request, MatchRequest, state.settings)
        texts = _texts(parsed.body.texts, "texts")
        images = await decode_images(parsed.images, state.settings)
        scores = await state.run(inference.MATCH, None, MatchJob(images, texts), len(images) * len(texts))
        return MatchResponse(model=_model_name(request), results=[
            MatchItem(image=i, text=t, score=float(scores[i, j]))
            for i in range(len(images)) for j, t in enumerate(texts)
        ])

    @router.post("/embed", response_model=EmbedResponse, openapi_extra=body_spec(EmbedRequest),
                 summary="Embed images and/or texts")
    async def embed(request: Request) -> EmbedResponse:
        """L2-normalised ITC vectors; with both images and texts, their cosine similarity too."""
        state, blip = _ready_for(request, ITC_HEAD)
        parsed = await parse_request(request, EmbedRequest, state.settings)
        texts = _texts(parsed.body.texts, "texts")
        images = await decode_images(parsed.images, state.settings)
        image_vecs, text_vecs = await state.run(
            inference.EMBED, None, EmbedJob(images, texts), len(images) + len(texts))
        similarity = None
        if len(images) and len(texts):
            similarity = np.asarray(blip.similarity(image_vecs, text_vecs)).tolist()
        return EmbedResponse(
            model=_model_name(request), dim=blip.embedding_dim,
            images=np.asarray(image_vecs, dtype=float).tolist(),
            texts=np.asarray(text_vecs, dtype=float).tolist(),
            similarity=similarity,
        )

    @router.post("/tag", response_model=TagResponse, openapi_extra=body_spec(TagRequest),
                 summary="Tag images with words of the tag vocabulary")
    async def tag(request: Request) -> TagResponse:
        """The best-scored tags of each image (zero-shot, over the server's tag vocabulary)."""
        state = server_state(request)
        state.require_ready()
        parsed = await parse_request(request, TagRequest, state.settings)
        body = parsed.body
        images = await decode_images(parsed.images, state.settings)
        results = await state.run(inference.TAG, (body.top_k, body.threshold), images, len(images))
        return TagResponse(model=_model_name(request), results=[
            TagItem(index=i, tags=[Tag(tag=t, score=float(s)) for t, s in r.tags])
            for i, r in enumerate(results)
        ])

    @router.post("/moderate", response_model=ModerateResponse, openapi_extra=body_spec(ModerateRequest),
                 summary="Check images against the moderation policy")
    async def moderate(request: Request) -> ModerateResponse:
        """Each category's score under the server's policy (--policy) and whether the image is flagged."""
        state = server_state(request)
        state.require_ready()
        parsed = await parse_request(request, ModerateRequest, state.settings)
        images = await decode_images(parsed.images, state.settings)
        results = await state.run(inference.MODERATE, parsed.body.explain, images, len(images))
        return ModerateResponse(model=_model_name(request), results=[
            ModerationItem(index=i, **inference.moderation_fields(r)) for i, r in enumerate(results)
        ])

    return router
