"""The same app on Ray Serve: a local Ray cluster (2 CPUs, loopback), two CPU replicas of the tiny model.

Requests spread over both replicas, and every answer equals the single server's. One cluster per module.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import MODEL_ID, data_uri, free_port, image_part

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_url(qwen_path: str):
    from focus_integrations.server.cli import ServeSettings
    from focus_integrations.server.ray_serve import focus_deployment

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = ServeSettings(model=qwen_path, served_model_name=MODEL_ID, threads=1)  # batched engine
        app = focus_deployment(
            settings, num_replicas=2, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=16
        )
        serve.run(app, name="focus", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def _body(color: str, max_tokens: int = 6) -> dict:
    content = [image_part(data_uri(color)), image_part(data_uri("white")), {"type": "text", "text": "Which?"}]
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "seed": 0,
    }


def test_two_replicas_share_requests_and_answer_like_one_server(ray_url: str, server: str) -> None:
    colors = ["red", "green", "blue", "yellow", "black", "purple", "orange", "gray"]
    expected = {
        c: httpx.post(f"{server}/v1/chat/completions", json=_body(c), timeout=120).json() for c in colors
    }

    def ask(color: str) -> tuple[str, httpx.Response]:
        return color, httpx.post(f"{ray_url}/v1/chat/completions", json=_body(color), timeout=120)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, colors * 2))
    replicas = set()
    for color, response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["choices"][0]["message"]["content"] == expected[color]["choices"][0]["message"]["content"]
        assert body["usage"] == expected[color]["usage"]
        replicas.add(response.headers["x-focus-served-by"])
    assert len(replicas) == 2


def test_streaming_and_errors_through_the_ray_proxy(ray_url: str, server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{ray_url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    body = _body("red")
    chunks = list(client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    single = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=120).json()
    assert text == single["choices"][0]["message"]["content"]
    assert chunks[-1].usage.completion_tokens == single["usage"]["completion_tokens"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**(body | {"extra_body": {"alpha": -1}}))


def test_serve_run_config_file_is_valid() -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from focus_integrations.server.ray_serve import DEPLOYMENT_NAME, app_builder

    config = yaml.safe_load((REPO / "examples" / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    application = schema.applications[0]
    assert application.import_path == "focus_integrations.server.ray_serve:app_builder"
    assert [d.name for d in application.deployments] == [DEPLOYMENT_NAME]
    assert application.deployments[0].ray_actor_options.num_gpus == 1
    app_builder(dict(application.args))  # the args are ServeSettings fields
