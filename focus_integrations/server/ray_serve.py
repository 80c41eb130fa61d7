"""The same FastAPI app as a Ray Serve deployment: replicas, GPUs per replica, autoscaling.

Each replica loads the model and runs its own engine; Ray Serve's proxy spreads requests over them. The app
is built inside the replica (``@serve.ingress()`` with ``__serve_build_asgi_app__``), after the model is
loaded, so every route is exactly the single-server app of ``create_app``.

    from focus_integrations.server.ray_serve import focus_deployment
    app = focus_deployment(ServeSettings(model=...), num_replicas=2, ray_actor_options={"num_gpus": 1})
    serve.run(app, route_prefix="/")

``serve run`` with a config file uses :func:`app_builder` (``import_path:
focus_integrations.server.ray_serve:app_builder``, ``args`` = ServeSettings fields); docs/serving.md has one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ray import serve
from ray.serve import Application

from focus_integrations.server.cli import ServeSettings, build_engine

DEPLOYMENT_NAME = "FocusServer"


@serve.ingress()
class FocusServer:
    """One replica: the model, its engine, and the OpenAI-compatible app around them."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self._engine, self._config = build_engine(ServeSettings.from_dict(settings))

    def __serve_build_asgi_app__(self) -> Any:
        from focus_integrations.server.app import create_app

        return create_app(self._engine, self._config)


def focus_deployment(
    settings: ServeSettings | dict[str, Any],
    *,
    num_replicas: int | str | None = None,
    ray_actor_options: dict[str, Any] | None = None,
    autoscaling_config: dict[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
) -> Application:
    """A bound FOCUS deployment. ``ray_actor_options={"num_gpus": 1}`` gives each replica a GPU;
    ``autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}`` scales it.

    ``max_ongoing_requests`` (Ray's default is 5) should be at least what one replica's engine batches plus
    its queue: requests beyond it wait in Ray's proxy, not in the engine's batch.
    """
    values = settings if isinstance(settings, dict) else vars(settings)
    options: dict[str, Any] = {"name": DEPLOYMENT_NAME}
    if autoscaling_config is not None:
        options["autoscaling_config"] = autoscaling_config
    elif num_replicas is not None:
        options["num_replicas"] = num_replicas
    if ray_actor_options is not None:
        options["ray_actor_options"] = ray_actor_options
    if max_ongoing_requests is not None:
        options["max_ongoing_requests"] = max_ongoing_requests
    return serve.deployment(FocusServer).options(**options).bind(dict(values))


def app_builder(args: dict[str, Any]) -> Application:
    """For ``serve run``: ``args`` are ServeSettings fields; deployment options come from the config file."""
    return (
        serve.deployment(FocusServer)
        .options(name=DEPLOYMENT_NAME)
        .bind(dict(ServeSettings.from_dict(args).__dict__))
    )


def run_on_ray(
    settings: ServeSettings,
    *,
    host: str,
    port: int,
    replicas: int,
    gpus_per_replica: float,
    cpus_per_replica: float,
    autoscale_max: int | None,
    address: str | None,
) -> int:
    """``focus serve --ray``: start (or join) a Ray cluster, deploy, and serve until interrupted."""
    import ray

    ray.init(address=address, include_dashboard=False) if address else ray.init(include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    autoscaling = (
        {"min_replicas": replicas, "initial_replicas": replicas, "max_replicas": autoscale_max}
        if autoscale_max
        else None
    )
    app = focus_deployment(
        settings,
        num_replicas=replicas,
        ray_actor_options={"num_gpus": gpus_per_replica, "num_cpus": cpus_per_replica},
        autoscaling_config=autoscaling,
        max_ongoing_requests=max(5, settings.limits.get("max_queued_requests", 64)),
    )
    serve.run(app, name="focus", route_prefix="/")
    print(f"focus serve --ray: {replicas} replica(s) on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
        ray.shutdown()
    return 0
