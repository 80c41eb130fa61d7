"""``FocusDecoder``: loading, the option layers and the public API (generate / stream / score / batches).

Messages -> images + chat (request.build_conversation) -> masked rows (request.prepare_request, row_groups) ->
lockstep decode (stream.TextStream, or scheduler.py for batches) -> text (answer.Answer).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from focus_integrations.answer import Answer
from focus_integrations.decode import RowGroup
from focus_integrations.errors import DecoderBusyError, InvalidOptionError, UnsupportedModelError
from focus_integrations.families import FamilySpec, family_of
from focus_integrations.focus_config import FOCUS_CONFIG, read_focus_config
from focus_integrations.images import RemoteImages, check_remote_permission
from focus_integrations.loading import LoadingOptions
from focus_integrations.logits import TokenChooser
from focus_integrations.media import VideoSampling
from focus_integrations.messages import Conversation, prepare
from focus_integrations.model_facts import (
    context_length,
    empty_device_cache,
    placeholder_token_ids,
    vocab_size,
)
from focus_integrations.options import DecodingOptions, layer_sources
from focus_integrations.outputs import GenerationOutput
from focus_integrations.request import (
    PreparedRequest,
    build_conversation,
    prepare_request,
    render,
    row_groups,
    wants_special_tokens,
)
from focus_integrations.rows import encode_rows
from focus_integrations.scoring import candidate_token_ids, score_candidates
from focus_integrations.stream import TextStream
from focus_integrations.vision import supports_shared_vision
from focus_integrations.vocabulary import decoding_layer, generation_config_layer, split_options

if TYPE_CHECKING:
    from focus_integrations.constraints import GrammarConstraint, ResponseFormat


class FocusDecoder:
    """FOCUS (and vanilla / VCD) decoding around a Hugging Face image-text-to-text model.

    ``FocusDecoder(model, processor, **defaults)`` wraps objects you loaded; ``FocusDecoder.from_pretrained``
    loads them. ``defaults`` are decoding options (any name of the vocabulary, see
    :mod:`focus_integrations.vocabulary`) used when a call does not set them. Precedence, highest first: the
    call, these defaults, ``checkpoint_defaults`` (the checkpoint's ``focus_config.json``), the model's
    ``generation_config``, the library defaults; ``None`` means "not set" at every layer.

    Calls are serialised with a lock: one model object cannot run two requests at once. A call from another
    thread waits for the running one (at most ``busy_timeout`` seconds if set, then
    :class:`DecoderBusyError`); a call from the thread whose own stream is still open raises
    :class:`DecoderBusyError` at once instead of deadlocking.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        model_name: str | None = None,
        allow_remote_images: bool | RemoteImages = False,
        busy_timeout: float | None = None,
        checkpoint_defaults: dict[str, Any] | None = None,
        **defaults: Any,
    ) -> None:
        if not hasattr(model, "get_image_features") and not hasattr(
            getattr(model, "model", None), "get_image_features"
        ):
            raise UnsupportedModelError(
                f"{type(model).__name__} is not a vision-language model (no image features)"
            )
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.model_name = model_name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.allow_remote_images = check_remote_permission(allow_remote_images)
        self.family: FamilySpec = family_of(model)
        # The layers below a call, lowest first (see the class docstring); each holds only what it sets.
        config = getattr(model, "generation_config", None)
        self.generation_defaults, self.ignored_generation_config = (
            generation_config_layer(config) if config is not None else ({}, {})
        )
        self.checkpoint_defaults = decoding_layer(checkpoint_defaults or {}, where=f"in {FOCUS_CONFIG}")
        self.defaults = decoding_layer(defaults, where="in the decoder defaults")
        self.vocab_size = vocab_size(model)
        # The default end ids (a call's eos_token_id may differ); resolving also fails early on bad defaults.
        self.eos_token_ids = set(self.resolve_options().eos_token_id or ())
        self.banned_token_ids = placeholder_token_ids(model)
        self.context_length = context_length(model)
        self.supports_shared_vision = supports_shared_vision(model)
        self.device = next(model.parameters()).device
        self.busy_timeout = _check_busy_timeout(busy_timeout)
        self._lock = threading.Lock()  # the model: one request (or one batched step) at a time
        self._owner: int | None = None  # thread id holding the lock (same-thread calls fail fast)
        self.processor_lock = threading.Lock()  # fast tokenizers are not safe to call from two threads

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        allow_remote_images: bool | RemoteImages = False,
        busy_timeout: float | None = None,
        loading: LoadingOptions | None = None,
        **options: Any,
    ) -> FocusDecoder:
        """Load a checkpoint (hub id or local folder) and wrap it.

        ``options`` are transformers loading arguments (``dtype``/``torch_dtype``, ``device``, ``device_map``,
        ``attn_implementation``, ``quantization_config``, ``low_cpu_mem_usage``, ``revision``, ``cache_dir``,
        ``token``, ``trust_remote_code``, ``local_files_only``, ``model_kwargs``, ``processor_kwargs``; or all
        of them as ``loading=LoadingOptions(...)``) and decoding defaults; an unknown name raises
        ``InvalidOptionError`` listing both. Offline, a missing checkpoint raises ``ModelNotFoundError``; a
        damaged one ``CheckpointError``; a missing backend or a bad device ``InvalidOptionError``.
        """
        from focus_integrations.loading import hub_arguments, load_model_and_processor

        loading_kwargs, defaults = split_options(options)
        if loading is not None and loading_kwargs:
            raise InvalidOptionError(
                "pass loading options either as loading=LoadingOptions(...) or as keywords"
            )
        loading = loading or LoadingOptions.from_kwargs(**loading_kwargs)
        name = os.fspath(name_or_path)
        # Read before the weights: a bad focus_config.json fails fast.
        checkpoint_defaults = read_focus_config(name, hub_arguments(loading, name))
        model, processor = load_model_and_processor(name_or_path, loading)
        return cls(
            model,
            processor,
            model_name=name,
            allow_remote_images=allow_remote_images,
            busy_timeout=busy_timeout,
            checkpoint_defaults=checkpoint_defaults,
            **defaults,
        )

    def resolve_options(self, **options: Any) -> DecodingOptions:
        """The options a call with ``options`` decodes with (every layer applied, validated)."""
        return self._with_eos(DecodingOptions.from_layers(*self._layers(options)))

    def _layers(self, options: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("generation_config", self.generation_defaults),
            (FOCUS_CONFIG, self.checkpoint_defaults),
            ("decoder defaults", self.defaults),
            ("call", decoding_layer(options)),
        ]

    def _resolve(self, options: dict[str, Any]) -> tuple[DecodingOptions, dict[str, str]]:
        """A call's options and which layer set each one (reported in ``settings["sources"]``)."""
        layers = self._layers(options)
        return self._with_eos(DecodingOptions.from_layers(*layers)), layer_sources(layers)

    # ----------------------------------------------------------------------------------------------- public

    def generate(
        self,
        images: Sequence[Any] | None = None,
        prompt: str | None = None,
        *,
        videos: Sequence[Any] | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        require_images: bool = True,
        assistant_prefix: str | None = None,
        **options: Any,
    ) -> GenerationOutput:
        """Decode a full answer. See :class:`DecodingOptions` for ``options``.

        ``images=[a, b]`` with ``prompt`` is one user turn ``[image]*N + [text]``; a nested list is one image
        group (``images=[[a1, a2], [b1]]``: FOCUS separates groups, not images); ``videos=[clip, ...]`` adds
        videos (paths, bytes or lists of frames), sampled to ``num_frames`` frames each.

        ``require_images=False`` decodes text-only turns plainly instead of raising ``NoImageError``.
        ``assistant_prefix`` is text the answer is forced to start with (e.g. ``"<tool_call>"``); decoding
        continues from it and it is not part of ``output.text``.
        """
        stream = self.stream(
            images,
            prompt,
            videos=videos,
            messages=messages,
            system=system,
            tools=tools,
            require_images=require_images,
            assistant_prefix=assistant_prefix,
            **options,
        )
        for _ in stream:
            pass
        return stream.output

    def stream(
        self,
        images: Sequence[Any] | None = None,
        prompt: str | None = None,
        *,
        videos: Sequence[Any] | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        require_images: bool = True,
        assistant_prefix: str | None = None,
        **options: Any,
    ) -> TextStream:
        """Like ``generate``, as an iterator of text deltas; ``.output`` holds the result once exhausted."""
        resolved, sources = self._resolve(options)
        conversation = self._conversation(
            images, prompt, videos, messages, system, require_images, assistant_prefix, resolved
        )
        # Built now, so an unsupported tokenizer or schema fails at the call, before any decoding.
        constraint = self._constraint(resolved.response_format)
        return TextStream(self, conversation, tools, resolved, constraint, sources)

    def generate_batch(
        self,
        requests: Sequence[dict[str, Any]],
        *,
        max_rows: int | None = None,
        join: str = "step",
        return_exceptions: bool = False,
    ) -> list[GenerationOutput]:
        """Decode several requests together, one forward pass per step for all of them.

        Each request is a dict of ``generate`` keyword arguments (``images``, ``prompt`` or ``messages``,
        options, ...); each gets exactly the answer ``generate`` gives it alone. ``max_rows`` caps the rows
        decoded at once (default ``batching.DEFAULT_MAX_ROWS``): requests wait for room, and one larger than
        the cap runs alone in row groups. Requests are prepared when they start, so a large batch does not
        hold every request's pixels at once. The first request that fails raises its error (the others are
        cancelled); with ``return_exceptions=True`` its error takes its place in the list instead.
        """
        from focus_integrations.batching import run_batch

        return run_batch(self, requests, max_rows=max_rows, join=join, return_exceptions=return_exceptions)

    def score(
        self,
        images: Sequence[Any] | None = None,
        prompt: str | None = None,
        *,
        candidates: Sequence[str],
        videos: Sequence[Any] | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        require_images: bool = True,
        assistant_prefix: str | None = None,
        **options: Any,
    ) -> list[float]:
        """Total log-probability of each candidate answer right after the prompt, under the logits rule."""
        return [
            sum(t)
            for t in self.score_tokens(
                images,
                prompt,
                videos=videos,
                candidates=candidates,
                messages=messages,
                system=system,
                tools=tools,
                require_images=require_images,
                assistant_prefix=assistant_prefix,
                **options,
            )
        ]

    def score_tokens(
        self,
        images: Sequence[Any] | None = None,
        prompt: str | None = None,
        *,
        candidates: Sequence[str],
        videos: Sequence[Any] | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        require_images: bool = True,
        assistant_prefix: str | None = None,
        **options: Any,
    ) -> list[list[float]]:
        """Per-token log-probabilities of each candidate (tokenised on its own, no special tokens)."""
        with self.processor_lock:  # the same tokenizer may be encoding a batch engine's request right now
            candidate_ids = candidate_token_ids(self.tokenizer, candidates)
        resolved, sources = self._resolve(options)
        conversation = self._conversation(
            images, prompt, videos, messages, system, require_images, assistant_prefix, resolved
        )
        with self._hold():
            return self._run_with_memory_fallback(
                conversation,
                tools,
                resolved,
                lambda request, groups: score_candidates(groups, request.rule, candidate_ids),
                sources,
            )

    def render_prompt(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None = None,
        *,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The chat template applied to ``messages`` (with a generation prompt), as text.

        ``chat_template_kwargs`` go to ``apply_chat_template`` (on top of the decoder's defaults), e.g.
        ``{"add_vision_id": True}`` for Qwen2/2.5-VL.
        """
        options = self.resolve_options(chat_template_kwargs=chat_template_kwargs)
        return render(self.processor, self._prepare(messages, options), tools, options.chat_template_kwargs)

    def count_tokens(
        self,
        text_or_messages: str | Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None = None,
        *,
        chat_template_kwargs: dict[str, Any] | None = None,
        multi_image_anyres: bool | None = None,
    ) -> int:
        """Tokens of a text, or of a whole chat prompt including its image tokens (as a vanilla request with
        the same ``chat_template_kwargs`` / ``multi_image_anyres`` would see them)."""
        if isinstance(text_or_messages, str):
            with self.processor_lock:
                return len(self.tokenizer(text_or_messages, add_special_tokens=False)["input_ids"])
        options = self.resolve_options(
            chat_template_kwargs=chat_template_kwargs, multi_image_anyres=multi_image_anyres
        )
        conversation = self._prepare(text_or_messages, options)
        prompt = render(self.processor, conversation, tools, options.chat_template_kwargs)
        with self.processor_lock:
            inputs = encode_rows(
                self.processor,
                prompt,
                [conversation.images],
                add_special_tokens=wants_special_tokens(self.tokenizer, prompt),
                flat_images=options.multi_image_anyres and self.family.flat_list_anyres,
            )
        return int(inputs["input_ids"].shape[1])

    @property
    def busy(self) -> bool:
        """True while a request (or an unfinished stream) holds the model."""
        return self._lock.locked()

    @contextlib.contextmanager
    def _hold(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the model for one request. ``timeout`` (default ``busy_timeout``; None waits as long as it takes)
        bounds the wait for another thread's request; the holder's own thread is refused at once."""
        me = threading.get_ident()
        if self._owner == me:
            raise DecoderBusyError(
                "this thread's own stream still holds the decoder: iterate it to the end or close() it before "
                "the next call (or make the call from another thread)"
            )
        wait = self.busy_timeout if timeout is None else timeout
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise DecoderBusyError(
                f"the decoder stayed busy with another request for {wait} s (busy_timeout)"
            )
        self._owner = me
        try:
            yield
        finally:
            self._owner = None
            self._lock.release()

    # ----------------------------------------------------------------------------------------------- internals

    def _prepare(self, messages: Any, options: DecodingOptions) -> Conversation:
        """Messages with the decoder's defaults for video sampling (render_prompt, count_tokens)."""
        video = VideoSampling.from_options(options)
        return prepare(messages, allow_remote_images=self.allow_remote_images, video=video)

    def _conversation(
        self,
        images: Any,
        prompt: str | None,
        videos: Any,
        messages: Any,
        system: str | None,
        require_images: bool,
        assistant_prefix: str | None,
        options: DecodingOptions,
    ) -> Conversation:
        return build_conversation(
            images,
            prompt,
            messages,
            system,
            videos=videos,
            video=VideoSampling.from_options(options),
            allow_remote_images=self.allow_remote_images,
            require_images=require_images,
            assistant_prefix=assistant_prefix,
        )

    def _run_with_memory_fallback(
        self,
        conversation: Conversation,
        tools: Any,
        options: DecodingOptions,
        run: Callable[[PreparedRequest, list[RowGroup]], Any],
        sources: dict[str, str] | None = None,
    ) -> Any:
        """Prepare the request and run it; on out-of-memory, retry with the rows in groups half as large."""
        request = prepare_request(self, conversation, tools, options, sources=sources)
        chunk = request.chunk
        while True:
            groups = row_groups(self, request, chunk)
            try:
                return run(request, groups)
            except torch.OutOfMemoryError:
                if chunk == 1:
                    raise
                del groups
                empty_device_cache(self.model)
                chunk = max(1, chunk // 2)

    def _chooser(self, options: DecodingOptions, constraint: GrammarConstraint | None = None) -> TokenChooser:
        """A fresh per-request token chooser with its own generator (seeded: reproducible) and, when the
        options carry a ``response_format``, its own grammar constraint (``constraint``: one built already)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(options.seed if options.seed is not None else torch.seed())
        if constraint is None:
            constraint = self._constraint(options.response_format)
        return TokenChooser(options, generator, constraint)

    def _constraint(self, response_format: ResponseFormat | None) -> GrammarConstraint | None:
        """A fresh per-request grammar constraint for ``response_format`` (None: unconstrained)."""
        if response_format is None:
            return None
        from focus_integrations.constraints import vocabulary_for

        vocabulary = vocabulary_for(self.tokenizer, self.vocab_size, self.eos_token_ids, self.model_name)
        return vocabulary.constraint(response_format)

    def _batch_job(self, images: Any, prompt: str | None, kwargs: dict[str, Any], sink: Any = None) -> Any:
        """A ``batching.Job`` for the arguments of ``stream``; options are checked now, the rest on ``prepare``."""
        from focus_integrations.scheduler import Job

        known = ("videos", "messages", "system", "tools", "require_images", "assistant_prefix")
        call = {key: kwargs.pop(key) for key in known if key in kwargs}
        options, sources = self._resolve(kwargs)
        tools = call.get("tools")

        def prepare() -> tuple[PreparedRequest, Answer]:
            conversation = self._conversation(
                images,
                prompt,
                call.get("videos"),
                call.get("messages"),
                call.get("system"),
                call.get("require_images", True),
                call.get("assistant_prefix"),
                options,
            )
            request = prepare_request(self, conversation, tools, options, sources=sources)
            return request, self._answer(request, self._chooser(options))

        return Job(prepare, sink)

    def _answer(self, request: PreparedRequest, chooser: TokenChooser) -> Answer:
        eos = set(request.options.eos_token_id or ()) or self.eos_token_ids
        return Answer(request, chooser, self.tokenizer, eos, self.device)

    def _with_eos(self, options: DecodingOptions) -> DecodingOptions:
        """``eos_token_id`` as ``generate`` uses it (the generation config's unless overridden); without one
        anywhere, the tokenizer's EOS (``generate`` would never stop)."""
        if options.eos_token_id is not None:
            return options
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return replace(options, eos_token_id=(int(eos),) if eos is not None else None)

    def check_token_ids(self, options: DecodingOptions) -> None:
        """Token ids in the options must exist in the model's vocabulary (else transformers' processors fail
        deep inside torch)."""
        ids = [*(options.eos_token_id or ()), *(options.suppress_tokens or ())]
        ids += [i for words in options.bad_words_ids or () for i in words]
        ids += [options.pad_token_id] if options.pad_token_id is not None else []
        outside = sorted({i for i in ids if i >= self.vocab_size})
        if outside:
            raise InvalidOptionError(
                f"token id(s) {outside} are outside the model's vocabulary (size {self.vocab_size})"
            )


def _check_busy_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
        raise InvalidOptionError(
            f"busy_timeout must be None or a finite number of seconds >= 0, got {value!r}"
        )
    return float(value)
