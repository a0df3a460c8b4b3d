"""MLflow credentials come from MLflow's own environment variables: against a server with basic auth.

headwater has no MLflow credential keys: MLflow reads ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``) itself, and every layer's process
inherits its parent's environment, so nothing secret goes into a config file or onto a command line.
"""
from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from headwater import registry
from headwater.embedded import EmbeddedProcess, free_port, mlflow_answers, mlflow_command

ADMIN_PASSWORD = "adm1n-pa55-7c1e"


@pytest.fixture(scope="module")
def mlflow_with_auth(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("mlflow-auth")
    port = free_port()
    # the auth app's user store in the test's directory (its default is basic_auth.db in the working directory)
    (var_dir / "basic_auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{var_dir / 'basic_auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    with pytest.MonkeyPatch.context() as env:  # the server's own settings, for its process only
        env.setenv("MLFLOW_AUTH_CONFIG_PATH", str(var_dir / "basic_auth.ini"))
        env.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        env.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "test-only-secret")
        server = EmbeddedProcess("mlflow with basic auth", [*mlflow_command("127.0.0.1", port, var_dir),
                                                            "--app-name", "basic-auth"],
                                 "127.0.0.1", port, var_dir / "mlflow.log",
                                 ready=lambda: mlflow_answers("127.0.0.1", port)).start(120)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_the_registry_authenticates_with_mlflows_environment_variables(make_config, mlflow_with_auth, monkeypatch):
    config = make_config(**{"mlflow.tracking-uri": mlflow_with_auth})
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(MlflowException) as refused:
        registry.experiment_id(config)
    assert "401" in str(refused.value) or "Unauthorized" in str(refused.value)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    assert registry.experiment_id(config)
    assert registry.get_alias_version(config, registry.CHAMPION) is None
