"""The production HTTP(S) server of the serving layer: one process holding the model, a pool of threads.

cheroot (CherryPy's WSGI server) serves plain HTTP or, with ``headwater.serving.api.tls.cert-file``
and ``key-file``, HTTPS through Python's ``ssl``. Chosen by measurement with ``bench/serving_als.py
--server ... [--tls]`` (1M items × 50 features, ``/recommend?howMany=10``; p50 with 1 / 4 clients,
the mean of two runs each): waitress (the previous server) 20 / 50 ms, 381 MB, but it cannot
terminate TLS; cheroot 21 / 52 ms over HTTP and 21 / 54 ms over HTTPS, 383 MB, one process;
gunicorn with one gthread worker 21 / 55 ms and 21 / 66 ms over HTTPS, 428 MB, since its master
process runs beside the worker that holds the model (and restarts it, model load included, when a
request outlasts its timeout). Same latency within the noise, TLS, and one process: cheroot.

The context path (``headwater.serving.api.context-path``) is applied by :func:`mount` inside the
Flask app, so Flask's ``request.script_root`` knows it and paths outside it answer a JSON 404.
"""
from __future__ import annotations

import logging
import signal
import ssl
import threading

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from headwater.config import Config, ConfigError

log = logging.getLogger(__name__)
API = "headwater.serving.api"


def context_path(config: Config) -> str:
    return config.get(f"{API}.context-path").rstrip("/")


def mount(app: Flask, prefix: str) -> None:
    """Serve ``app`` under ``prefix`` (e.g. ``/headwater``); anything else is a JSON 404."""
    if not prefix:
        return
    outside = Flask("headwater-outside-context-path")

    @outside.route("/", defaults={"path": ""})
    @outside.route("/<path:path>")
    def not_here(path):
        response = jsonify({"error": "Not Found", "message": f"this serving layer answers under {prefix}/ "
                                                             "(headwater.serving.api.context-path)"})
        response.status_code = 404
        return response

    app.wsgi_app = DispatcherMiddleware(outside, {prefix: app.wsgi_app})


def tls_files(config: Config) -> tuple[str, str] | None:
    """(certificate, key) when HTTPS is configured; a ConfigError when only one is set or they do not load."""
    cert, key = config.get(f"{API}.tls.cert-file"), config.get(f"{API}.tls.key-file")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError(f"{API}.tls.cert-file and {API}.tls.key-file must be set together "
                          f"(in {config.source_of(f'{API}.tls.cert-file')})")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{API}.tls.cert-file {cert!r} and key-file {key!r} do not load as a PEM "
                          f"certificate and its key: {exc}") from None
    return cert, key


class HTTPServer:
    """cheroot serving a WSGI app on (host, port), HTTPS when given TLS files; ``start`` runs it in a thread.

    >>> server = HTTPServer(lambda env, start: [], "127.0.0.1", 0)
    >>> server.scheme
    'http'
    """

    def __init__(self, wsgi_app, host: str, port: int, tls: tuple[str, str] | None = None, threads: int = 8):
        from cheroot import wsgi

        self.scheme = "https" if tls else "http"
        self._server = wsgi.Server((host, port), wsgi_app, numthreads=threads, server_name="headwater")
        if tls:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self._server.ssl_adapter = BuiltinSSLAdapter(*tls)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    def start(self) -> HTTPServer:
        """Bind and serve in a daemon thread; returns once the socket listens."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="http-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.safe_start()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(10)


def _interrupt(*_):
    raise KeyboardInterrupt


def run(app: Flask, config: Config, tls: tuple[str, str] | None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, then stop its model manager."""
    from serving_layer.app_context import MODELS

    host, port = config.get("headwater.serving.host"), config.get("headwater.serving.port")
    server = HTTPServer(app, host, port, tls, config.get(f"{API}.threads"))
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: the serving loop ends, then the finally
    log.info("serving %s (%s) on %s://%s:%s%s/", config.app_id, config.get("headwater.app"), server.scheme,
             host, port, context_path(config))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        app.extensions[MODELS].stop()


__all__ = ["HTTPServer", "context_path", "mount", "run", "tls_files"]
