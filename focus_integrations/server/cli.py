"""``focus serve``: the OpenAI-compatible server on one machine (uvicorn) or as Ray Serve replicas.

    focus serve --model PATH_OR_ID [--host 127.0.0.1] [--port 8000] [--engine batched|serial] [--join step|batch]
                [loading options: --device --dtype --device-map --attn-implementation --quantization-config ...]
                [--api-key KEY | $FOCUS_API_KEY] [limits...] [--ray --replicas K --gpus-per-replica G]

``ServeSettings`` holds everything a replica needs to build its engine and app, as plain values, so the
same settings travel to Ray Serve replicas (and come from a ``serve run`` config file's ``args``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focus_integrations.cli_options import add_loading_arguments, alpha_argument, json_object, loading_options
from focus_integrations.errors import InvalidOptionError
from focus_integrations.loading import LOADING_OPTIONS
from focus_integrations.noise import NOISE_MODES
from focus_integrations.options import MODES
from focus_integrations.server.config import ENGINES, JOIN_MODES, ImageAccess, Limits, ServerConfig

DEFAULT_PORT = 8000


@dataclass
class ServeSettings:
    """What to load and how to serve it (all plain values: picklable, JSON/YAML-friendly)."""

    model: str | None = None  # hub id or local folder; None: the bundled default model
    served_model_name: str | None = None  # the id clients send as "model" (default: --model as given)
    engine: str = "batched"
    max_rows: int | None = None  # batched engine: most rows decoded together
    join: str | None = None  # batched engine: "step" (default) or "batch" (engines.DEFAULT_JOIN)
    api_key: str | None = None
    threads: int | None = None  # torch intra-op threads per process (replica)
    # FocusDecoder.from_pretrained's loading options (loading.LoadingOptions: device, dtype, device_map,
    # attn_implementation, quantization_config, revision, trust_remote_code, ...)
    loading: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # decoding defaults (mode, alpha, noise, ...)
    limits: dict[str, Any] = field(default_factory=dict)  # Limits fields
    images: dict[str, Any] = field(default_factory=dict)  # ImageAccess fields

    def __post_init__(self) -> None:
        # Names are checked here; values (a device, a dtype) where the model loads: a Ray driver without a
        # GPU still starts GPU replicas.
        if self.join is not None and self.join not in JOIN_MODES:
            raise InvalidOptionError(f"join must be one of {', '.join(JOIN_MODES)}, got {self.join!r}")
        if self.join is not None and self.engine != "batched":
            raise InvalidOptionError("join applies to the batched engine only")
        unknown = sorted(set(self.loading) - set(LOADING_OPTIONS))
        if unknown:
            raise InvalidOptionError(
                f"unknown loading option(s) {', '.join(unknown)}; known: {', '.join(LOADING_OPTIONS)}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ServeSettings:
        """Settings from a config file's ``args``; loading options may also sit at the top level
        (``device: cuda`` next to ``model:``), as ``focus serve`` flags do."""
        values = dict(values)
        loading = dict(values.pop("loading", None) or {})
        loading |= {name: values.pop(name) for name in list(values) if name in LOADING_OPTIONS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidOptionError(
                f"unknown serve setting(s) {unknown}; known: {sorted(known)} and the loading options "
                f"{', '.join(LOADING_OPTIONS)}"
            )
        return cls(**values, loading=loading)

    def config(self, model_id: str) -> ServerConfig:
        images = dict(self.images)
        if images.get("local_media_dir"):
            images["local_media_dir"] = Path(images["local_media_dir"])
        return ServerConfig(
            model_id=self.served_model_name or model_id,
            limits=Limits(**self.limits),
            images=ImageAccess(**images),
            api_key=self.api_key or ServerConfig.api_key_from_env(),
        )


def build_engine(settings: ServeSettings) -> tuple[Any, ServerConfig]:
    """Load the model and start its engine: ``(engine, config)`` (used by the CLI and by Ray replicas)."""
    from focus_integrations.cli import resolve_model
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.server.engines import make_engine

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    path = resolve_model(settings.model)
    decoder = FocusDecoder.from_pretrained(path, **settings.loading, **settings.defaults)
    engine = make_engine(decoder, settings.engine, max_rows=settings.max_rows, join=settings.join)
    return engine, settings.config(settings.model or "default")


def build_app(settings: ServeSettings) -> Any:
    from focus_integrations.server.app import create_app

    engine, config = build_engine(settings)
    return create_app(engine, config)


# ---------------------------------------------------------------------------------------------- argparse


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits (defaults in docs/serving.md)")
    defaults = Limits()
    for name, kind, text in (
        ("max_images_per_request", int, "images in one request"),
        ("max_image_pixels", int, "width x height of one image"),
        ("max_output_tokens", int, "largest max_tokens a request may ask for"),
        ("default_max_tokens", int, "max_tokens when a request sets none"),
        ("max_total_tokens", int, "prompt + max_tokens of one request (default: the model's context)"),
        ("max_queued_requests", int, "requests waiting to decode; one more gets a 429"),
        ("max_request_bytes", int, "request body size"),
    ):
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest="limit_" + name,
            type=kind,
            default=None,
            help=f"{text} (default {getattr(defaults, name)})",
        )


def add_serve_commands(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API (FastAPI; optional Ray Serve)"
    )
    serve.add_argument("--model", default=None, help="hub id or local folder (default: the bundled model)")
    serve.add_argument("--served-model-name", default=None, help="model id clients use (default: --model)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--engine", choices=ENGINES, default=None, help="batched (default when available) or serial"
    )
    serve.add_argument("--max-rows", type=int, default=None, help="batched engine: rows decoded together")
    serve.add_argument(
        "--join",
        choices=JOIN_MODES,
        default=None,
        help="batched engine: new requests join the running batch at the next step (step, the default) "
        "or once it has drained (batch)",
    )
    serve.add_argument(
        "--api-key", default=None, help="require 'Authorization: Bearer KEY' (or $FOCUS_API_KEY)"
    )
    serve.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    add_loading_arguments(serve)  # the library's loading options, as every `focus` command takes them
    defaults = serve.add_argument_group("decoding defaults (requests may override them)")
    defaults.add_argument("--mode", choices=MODES, default=None, help="focus (default), vanilla or vcd")
    defaults.add_argument(
        "--alpha", type=alpha_argument, default=None, help="a number, or n-calibrated (alpha = (N-1)/N)"
    )
    defaults.add_argument("--noise", choices=sorted(NOISE_MODES), default=None)
    defaults.add_argument(
        "--chat-template-kwargs", type=json_object, default=None, metavar="JSON", help="for the chat template"
    )
    media = serve.add_argument_group("images")
    media.add_argument(
        "--allowed-local-media-path", default=None, help="serve file:// image URLs from inside this folder"
    )
    media.add_argument("--allow-remote-images", action="store_true", help="fetch http(s) image URLs")
    media.add_argument("--remote-image-max-bytes", type=int, default=None)
    media.add_argument("--remote-image-timeout", type=float, default=None, help="seconds")
    media.add_argument("--remote-image-max-redirects", type=int, default=None)
    _limit_arguments(serve)
    ray = serve.add_argument_group("Ray Serve (pip install 'focus-integrations[ray]')")
    ray.add_argument("--ray", action="store_true", help="run as a Ray Serve deployment")
    ray.add_argument("--replicas", type=int, default=1, help="replicas (each loads the model)")
    ray.add_argument("--gpus-per-replica", type=float, default=0.0)
    ray.add_argument("--cpus-per-replica", type=float, default=1.0)
    ray.add_argument("--autoscale-max", type=int, default=None, help="autoscale between --replicas and this")
    ray.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    serve.set_defaults(func=run_serve)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    from focus_integrations.server.engines import batched_engine_available

    engine = args.engine or ("batched" if batched_engine_available() else "serial")
    named = {
        "mode": args.mode,
        "alpha": args.alpha,
        "noise": args.noise,
        "chat_template_kwargs": args.chat_template_kwargs,
    }
    defaults = {name: value for name, value in named.items() if value is not None}
    limits = {
        key[len("limit_") :]: value
        for key, value in vars(args).items()
        if key.startswith("limit_") and value is not None
    }
    images: dict[str, Any] = {"allow_remote": args.allow_remote_images}
    if args.allowed_local_media_path:
        folder = Path(args.allowed_local_media_path)
        if not folder.is_dir():
            raise InvalidOptionError(f"--allowed-local-media-path {folder} is not a folder")
        images["local_media_dir"] = str(folder.resolve())
    for flag, key in (
        ("remote_image_max_bytes", "remote_max_bytes"),
        ("remote_image_timeout", "remote_timeout_s"),
        ("remote_image_max_redirects", "remote_max_redirects"),
    ):
        if getattr(args, flag) is not None:
            images[key] = getattr(args, flag)
    if not 1 <= args.port <= 65535:
        raise InvalidOptionError(f"--port must be from 1 to 65535, got {args.port}")
    try:
        Limits(**limits)
        ImageAccess(**images)
    except ValueError as err:
        raise InvalidOptionError(str(err)) from None
    return ServeSettings(
        model=args.model,
        served_model_name=args.served_model_name,
        engine=engine,
        max_rows=args.max_rows,
        join=args.join,
        api_key=args.api_key,
        threads=args.threads,
        loading=loading_options(args),
        defaults=defaults,
        limits=limits,
        images=images,
    )


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    for module, extra in (("fastapi", "serve"), ("uvicorn", "serve"), ("prometheus_client", "serve")) + (
        (("ray.serve", "ray"),) if args.ray else ()
    ):
        try:
            __import__(module)
        except ImportError:
            raise InvalidOptionError(
                f"focus serve{' --ray' if args.ray else ''} needs {module}: pip install 'focus-integrations[{extra}]'"
            ) from None
    if args.ray:
        from focus_integrations.server.ray_serve import run_on_ray

        return run_on_ray(
            settings,
            host=args.host,
            port=args.port,
            replicas=args.replicas,
            gpus_per_replica=args.gpus_per_replica,
            cpus_per_replica=args.cpus_per_replica,
            autoscale_max=args.autoscale_max,
            address=args.ray_address,
        )
    import uvicorn

    app = build_app(settings)
    print(
        f"focus serve: {app.state.focus.config.model_id} ({settings.engine} engine) on http://{args.host}:{args.port}/v1",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
    return 0
