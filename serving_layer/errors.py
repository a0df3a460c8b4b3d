"""One error type and one handler: every 4xx/5xx answer is JSON of the same shape.

``{"error": "Not Found", "message": "...", **details}``; endpoints raise :class:`ApiError` for the
conditions they know (unknown id 404, no model yet 503, bad parameter 400), and anything else
becomes a 500 with the same shape. A 500 never shows the exception to the client (its text may hold
paths, hosts or data): the body carries an error id, and the log has the id with the traceback.

>>> error = ApiError(404, "user 'u9' is not in the model", user="u9")
>>> error.body()
{'error': 'Not Found', 'message': "user 'u9' is not in the model", 'user': 'u9'}
"""
from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 2xx, with a message for people and details for programs."""

    def __init__(self, status: int, message: str, **details):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def body(self) -> dict:
        return {"error": HTTPStatus(self.status).phrase, "message": self.message, **self.details}


def bad_parameter(name: str, expected: str, got) -> ApiError:
    """A 400 in scikit-learn's words: "The 'howMany' parameter must be ... Got 0 instead."."""
    return ApiError(400, f"The {name!r} parameter must be {expected}. Got {got!r} instead.", parameter=name)


def not_found(kind: str, id_: str) -> ApiError:
    return ApiError(404, f"{kind} {id_!r} is not in the model", **{kind: id_})


def _answer(error: ApiError):
    response = jsonify(error.body())
    response.status_code = error.status
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _answer)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _answer(ApiError(error.code or 500, error.description or HTTPStatus(error.code).phrase))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        error_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s answering %s %s", error_id, request.method, request.path)
        return _answer(ApiError(500, f"internal error {error_id}: the server's log has the details",
                                error_id=error_id))
