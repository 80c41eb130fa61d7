"""``FocusMultiModalLLM`` options: the engine options it mirrors as fields, its constructor's checks, and the
mixin that turns fields plus a call's keywords into engine options through the core vocabulary
(:func:`focus_integrations.adapters.adapter_options`, the same rule ``ChatFocus`` uses)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from focus_integrations.adapters import adapter_options
from focus_integrations.errors import InvalidOptionError
from focus_integrations.loading import LOADING_FIELDS, LoadingOptions
from focus_integrations.options import FIELDS
from focus_integrations.vocabulary import check_adapter_fields

if TYPE_CHECKING:
    from pydantic import BaseModel

    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.options import DecodingOptions


@functools.cache
def engine_option_fields(model_class: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model_class`` that mirror engine options (those named as a
    :class:`~focus_integrations.DecodingOptions` field), in declaration order; per-call kwargs override them.
    Every other option of the engine's vocabulary goes in ``generate_kwargs`` (field) or as a per-call keyword."""
    return tuple(name for name in model_class.model_fields if name in FIELDS)


def check_constructor_arguments(model_class: type[BaseModel], kwargs: dict[str, Any]) -> None:
    """The engine's one validation on constructor arguments as given (before pydantic coerces "0.5" or
    True); ``torch_dtype`` (transformers' older name) becomes ``dtype`` in ``kwargs``."""
    if "torch_dtype" in kwargs:
        kwargs["dtype"] = LoadingOptions.from_kwargs(
            dtype=kwargs.get("dtype"), torch_dtype=kwargs.pop("torch_dtype")
        ).dtype
    try:
        check_adapter_fields(
            {k: v for k, v in kwargs.items() if k in engine_option_fields(model_class)},
            kwargs.get("generate_kwargs"),
            {k: v for k, v in kwargs.items() if k in LOADING_FIELDS},
            kwargs.get("timeout"),
        )
    except InvalidOptionError as err:
        raise InvalidOptionError(f"invalid FocusMultiModalLLM argument(s): {err}") from None


class OptionsMixin:
    """Loading and decoding options of ``FocusMultiModalLLM`` from its fields (and a call's overrides)."""

    generate_kwargs: dict[str, Any] | None
    _decoder: FocusDecoder

    def loading_options(self) -> LoadingOptions:
        """The transformers loading arguments these fields set, validated."""
        return LoadingOptions.from_kwargs(**{name: getattr(self, name) for name in LOADING_FIELDS})

    def _named_fields(self) -> dict[str, Any]:
        """The engine options the named fields set; None = not set (to switch off a lower layer's top-k, set
        ``top_k=0``, transformers' meaning)."""
        return {name: getattr(self, name) for name in engine_option_fields(type(self))}

    def _resolve_options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Options for one call: the fields, then per-call overrides, as one layer of engine options;
        validated with the decoder's layers below (InvalidOptionError names the option)."""
        options = adapter_options(self._named_fields(), self.generate_kwargs, overrides)
        self._decoder.resolve_options(**options)
        return options

    def effective_options(self, **overrides: Any) -> DecodingOptions:
        """The :class:`~focus_integrations.DecodingOptions` a call with ``overrides`` would decode with."""
        return self._decoder.resolve_options(
            **adapter_options(self._named_fields(), self.generate_kwargs, overrides)
        )
