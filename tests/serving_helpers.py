"""A serving app of any app type on its contract-check example model, and a live HTTP(S) server for it."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from headwater.registry import RegisteredModel
from serving_layer.app import create_app
from serving_layer.model_manager import ModelManager
from serving_layer.server import HTTPServer


def example_app(make_config, workdir: Path, app: str = "als", overrides: dict | None = None,
                more: list[str] = ()):
    """A serving app of ``app`` with its example model loaded; ``more`` are -D style override strings."""
    config = make_config(app)
    example = config.app.resolve("example")()
    config = make_config(app, **{**example.config_overrides, **(overrides or {})}).with_overrides(more)
    example.state.save(Path(workdir) / "state")
    model_class = config.app.resolve("serving_model")
    manager = ModelManager(model_class=model_class)
    manager.swap(model_class.from_registered(RegisteredModel(app, 1, Path(workdir) / "state"), config))
    return create_app(config, manager)


def register_example_champion(config, workdir: Path, tags: dict) -> int:
    """Register the app's example model as ``champion`` (a placeholder pyfunc); returns its version."""
    import mlflow.pyfunc

    from headwater import registry

    class Placeholder(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    example = config.app.resolve("example")()
    example.state.save(Path(workdir) / "registered")
    return registry.log_and_register(config, Path(workdir) / "registered", Placeholder(), tags,
                                     [registry.CHAMPION]).version


@contextmanager
def live_server(app, tls: tuple[str, str] | None = None):
    """Serve ``app`` on a free loopback port; yields the base URL."""
    server = HTTPServer(app, "127.0.0.1", 0, tls, threads=4).start()
    try:
        yield f"{server.scheme}://127.0.0.1:{server.port}"
    finally:
        server.stop()
