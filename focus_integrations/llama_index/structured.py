"""Structured output and forced tool calls of ``FocusMultiModalLLM``, decoded under a grammar constraint.

``structured_predict`` / ``astructured_predict`` / ``stream_structured_predict`` /
``astream_structured_predict`` (and so ``as_structured_llm(...)``, whose chat calls them) decode the answer
under the engine's ``response_format`` constraint: the output class's JSON schema, so the text always
parses into ``output_cls``, on every checkpoint whose tokenizer can spell JSON (a word-level one, like the
bundled default model's, raises ``UnsupportedTokenizerError``). LlamaIndex's default would pick a
function-calling program for tool-rendering templates and a prompt-and-parse program for the others; both
are prompt-only, so this always takes the constrained path, except with ``pydantic_program_mode=FUNCTION``
(the explicit choice of the tool route, itself constrained as a required call). An answer that
``max_new_tokens`` cut off raises ``IncompleteOutputError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.types import PydanticProgramMode

from focus_integrations.errors import IncompleteOutputError, InvalidOptionError
from focus_integrations.llama_index.tools import ToolRequest
from focus_integrations.tool_prompting import forced_tool_call, json_instruction

if TYPE_CHECKING:
    from pydantic import BaseModel

    from focus_integrations.decoder import FocusDecoder


def constrain_tool_call(decoder: FocusDecoder, tools: ToolRequest, kwargs: dict[str, Any]) -> ToolRequest:
    """A required call, decoded under its grammar (opening markup as the answer's forced start)."""
    if kwargs.get("response_format") is not None:
        raise InvalidOptionError(
            "a required tool call and a response_format cannot both constrain one answer"
        )
    forced = forced_tool_call(decoder, tools.argument_schemas or tools.schemas, tools.required or "any")
    kwargs["response_format"] = forced.response_format
    return dataclasses.replace(tools, prefix=forced.prefix, response_format=forced.response_format)


def response_format_for(output_cls: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": output_cls.__name__, "schema": output_cls.model_json_schema()},
    }


def parse_structured(output_cls: type[BaseModel], response: ChatResponse) -> BaseModel:
    """The final response as ``output_cls``; a cut-off answer raises instead of parsing half an object."""
    raw = response.raw or {}
    if raw.get("constraint_satisfied") is False:
        raise IncompleteOutputError(
            f"the {output_cls.__name__} answer was cut off before it was complete "
            f"(finish_reason={raw.get('finish_reason')!r}): raise max_new_tokens, or bound the schema "
            "(max_length, max_items, Literal)"
        )
    return output_cls.model_validate_json(response.message.content or "")


class StructuredPredictMixin:
    """The structured-predict family of ``LLM``, constrained by the output class's schema (see module doc)."""

    pydantic_program_mode: PydanticProgramMode

    def _structured_call(
        self, output_cls: type[BaseModel], prompt: Any, llm_kwargs: dict[str, Any] | None, prompt_args: Any
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        response_format = response_format_for(output_cls)
        messages = _with_instruction(
            prompt.format_messages(llm=self, **prompt_args), json_instruction(response_format)
        )
        return messages, {**(llm_kwargs or {}), "response_format": response_format}

    def structured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: Any,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> BaseModel:
        if self.pydantic_program_mode == PydanticProgramMode.FUNCTION:
            return super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)  # type: ignore[misc]
        messages, kwargs = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        return parse_structured(output_cls, self.chat(messages, **kwargs))  # type: ignore[attr-defined]

    async def astructured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: Any,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> BaseModel:
        if self.pydantic_program_mode == PydanticProgramMode.FUNCTION:
            return await super().astructured_predict(output_cls, prompt, llm_kwargs, **prompt_args)  # type: ignore[misc]
        messages, kwargs = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        return parse_structured(output_cls, await self.achat(messages, **kwargs))  # type: ignore[attr-defined]

    def stream_structured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: Any,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Any, None, None]:
        """Partial objects as the answer streams (LlamaIndex's incremental parser), then the validated one."""
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        if self.pydantic_program_mode == PydanticProgramMode.FUNCTION:
            yield from super().stream_structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)  # type: ignore[misc]
            return
        messages, kwargs = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        partial = None
        for response in self.stream_chat(messages, **kwargs):  # type: ignore[attr-defined]
            if response.raw is not None:  # the last response: the whole answer, with its finish
                yield parse_structured(output_cls, response)
                return
            partial = process_streaming_content_incremental(response, output_cls, partial)
            yield partial

    async def astream_structured_predict(
        self,
        output_cls: type[BaseModel],
        prompt: Any,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Any, None]:
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        if self.pydantic_program_mode == PydanticProgramMode.FUNCTION:
            return await super().astream_structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)  # type: ignore[misc]
        messages, kwargs = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        responses = await self.astream_chat(messages, **kwargs)  # type: ignore[attr-defined]

        async def gen() -> AsyncGenerator[Any, None]:
            partial = None
            async for response in responses:
                if response.raw is not None:
                    yield parse_structured(output_cls, response)
                    return
                partial = process_streaming_content_incremental(response, output_cls, partial)
                yield partial

        return gen()


def _with_instruction(messages: Sequence[ChatMessage], instruction: str) -> list[ChatMessage]:
    """The schema instruction in the system turn (appended to a text system message, or a new one first)."""
    messages = list(messages)
    if messages and messages[0].role == MessageRole.SYSTEM and isinstance(messages[0].content, str):
        first = messages[0].model_copy(deep=True)
        first.content = f"{messages[0].content}\n\n{instruction}" if messages[0].content else instruction
        return [first, *messages[1:]]
    return [ChatMessage(role=MessageRole.SYSTEM, content=instruction), *messages]
