"""The leakage lab: measures, for any supported checkpoint, cross-image leakage and FOCUS's preconditions.

Framework-free; the model is reached only through the engine's public API (``FocusDecoder``) or, in tests,
through a plain answer function.
"""
