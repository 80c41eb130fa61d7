"""``ChatFocus.profile``: what the adapter and the checkpoint support, known without loading any weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.language_models.model_profile import ModelProfile

from focus_integrations.tool_prompting import processor_renders_tools, renders_tools

if TYPE_CHECKING:
    from focus_integrations.langchain.chat_models import ChatFocus


def model_profile(chat: ChatFocus) -> ModelProfile:
    profile = ModelProfile(
        open_weights=True,
        text_inputs=True,
        image_inputs=True,
        image_url_inputs=bool(chat.allow_remote_images),
        image_tool_message=True,
        pdf_inputs=False,
        audio_inputs=False,
        video_inputs=False,
        pdf_tool_message=False,
        text_outputs=True,
        image_outputs=False,
        tool_choice=True,  # a required call is enforced (the answer is made to start with it)
        tool_call_streaming=False,  # calls arrive whole, on the last chunk
    )
    renders = template_renders_tools(chat)
    if renders is not None:  # unknown (a hub id that is not on disk): left out rather than guessed
        profile["tool_calling"] = renders
    if chat.max_tokens is not None:
        profile["max_output_tokens"] = chat.max_tokens
    return profile


def template_renders_tools(chat: ChatFocus) -> bool | None:
    """Whether the checkpoint's chat template shows tools to the model (native tool calling).

    Templates without tool syntax (LLaVA, Gemma, the default model) still get tool calls through an
    instruction ChatFocus adds, but the model was not trained for it: ``profile["tool_calling"]`` says so.
    Probed on the decoder when one is given or already loaded, else on the processor alone.
    """
    from focus_integrations.langchain._options import loading_options
    from focus_integrations.loading import hub_arguments
    from focus_integrations.processors import load_processor
    from focus_integrations.shared import loaded_decoder

    decoder = chat.decoder or chat._decoder
    if decoder is not None:
        return renders_tools(decoder)
    if not chat.model:
        return None
    name, loading = str(chat.model), loading_options(chat)
    decoder = loaded_decoder(name, **loading.set_values())  # the shared one, if another adapter loaded it
    if decoder is not None:
        return renders_tools(decoder)
    try:
        # The processor alone, from files already on disk: building a chat model never downloads anything.
        arguments = hub_arguments(loading, name) | {"local_files_only": True}
        processor = load_processor(name, **arguments, **loading.processor_kwargs)
    except Exception:  # noqa: BLE001 - not on disk (a hub id not in the cache) or not loadable: unknown
        return None
    return processor_renders_tools(processor)
