"""transformers' own logits processors, built from :class:`DecodingOptions` the way ``model.generate`` builds
them (same classes, same order, same conditions), for the COMBINED logits of one request (a batch of one).

Order, as in ``GenerationMixin._get_logits_processor``: repetition penalty, no-repeat n-grams, bad words,
min length, min new tokens, suppressed tokens; then, only when sampling, temperature, top-k, top-p, min-p,
typical-p, epsilon and eta cutoffs. With these and the same EOS ids, vanilla decoding gives the tokens
``model.generate`` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from focus_integrations.options import DecodingOptions


def generate_processors(
    options: DecodingOptions, prompt_length: int, eos_token_ids: Sequence[int] = (), device: str = "cpu"
) -> LogitsProcessorList:
    """The processors ``model.generate`` would run for these settings, on a prompt of ``prompt_length``,
    for logits on ``device``."""
    eos = list(eos_token_ids)
    processors = LogitsProcessorList()
    if options.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
    if options.no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramLogitsProcessor(options.no_repeat_ngram_size))
    if options.bad_words_ids is not None:
        processors.append(
            NoBadWordsLogitsProcessor([list(ids) for ids in options.bad_words_ids], eos or None)
        )
    if options.min_length > 0 and eos:
        processors.append(MinLengthLogitsProcessor(options.min_length, eos, device=device))
    if options.min_new_tokens > 0 and eos:
        processors.append(
            MinNewTokensLengthLogitsProcessor(prompt_length, options.min_new_tokens, eos, device=device)
        )
    if options.suppress_tokens is not None:
        processors.append(SuppressTokensLogitsProcessor(list(options.suppress_tokens), device=device))
    if options.do_sample:
        if options.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(options.temperature))
        if options.top_k != 0:
            processors.append(TopKLogitsWarper(options.top_k))
        if options.top_p < 1.0:
            processors.append(TopPLogitsWarper(options.top_p))
        if options.min_p is not None:
            processors.append(MinPLogitsWarper(options.min_p))
        if options.typical_p < 1.0:
            processors.append(TypicalLogitsWarper(options.typical_p))
        if 0.0 < options.epsilon_cutoff < 1.0:
            processors.append(EpsilonLogitsWarper(options.epsilon_cutoff))
        if 0.0 < options.eta_cutoff < 1.0:
            processors.append(EtaLogitsWarper(options.eta_cutoff, device=device))
    return processors
