"""ALS endpoints, with Oryx's paths, parameters and answers (``/recommend/<userID>`` and the rest).

Scores come from :class:`serving_layer.als_model.ALSServingModel`: one float32 matrix-vector
product over every item and an exact top-N; the values are the model's estimates (explicit feedback:
μ + b_u + b_i + x·y), and ``/estimate`` answers for a user the model does not know yet with what it
knows (μ + b_i), so every event on a known item has an estimate. Writes (``/pref``, ``/ingest``) go to
``<id>.input`` as text lines, exactly as a producer would send them, after the same parser the layers
use has accepted them (a 400 otherwise); the model changes when the speed layer's UP messages come
back on ``<id>.update``.
"""
from __future__ import annotations

import time

import numpy as np
from flask import Blueprint, jsonify, request

from serving_layer import formats, rescorers
from serving_layer.als_model import ALSServingModel, Query
from serving_layer.app_context import input_format, models, rescorer, send_input_lines
from serving_layer.errors import ApiError, not_found
from serving_layer.operations import (
    CONSIDER_KNOWN_ITEMS,
    PAGING,
    RANKING,
    SENT_ANSWER,
    Body,
    id_values_answer,
    ids_answer,
    lines_body,
    operation,
    value_answer,
    values_answer,
)

bp = Blueprint("als", __name__)
USERS = "user IDs separated by '/'"
ITEMS = "item IDs separated by '/'"
ITEM_VALUES = "item IDs separated by '/', each optionally `=strength` (default 1)"
STRENGTH_BODY = Body("The strength of the preference, a finite number (default 1)", "2.5", ("text/plain",))


def _model() -> ALSServingModel:
    return models().require_model()


def _user_query(model: ALSServingModel, user: str) -> Query:
    query = model.user_query(user)
    if query is None:
        raise not_found("user", user)
    return query


def _item_vector(model: ALSServingModel, item: str) -> np.ndarray:
    vector = model.items.vector(item)
    if vector is None:
        raise not_found("item", item)
    return vector


def _rescorer(use: str, *subjects):
    """The configured providers' rescorer for this use (a :mod:`serving_layer.rescorers` hook name), given
    the use's user or item IDs and the request's ``rescorerParams``; None without one."""
    provider = rescorer()
    if provider is None:
        return None
    return getattr(provider, use)(*subjects, request.args.getlist("rescorerParams"))


def _ranked(model, query, exclude=None, cosine=False, rescoring=None):
    how_many, offset = formats.paging()
    top = model.top_n(query, how_many + offset, exclude, cosine, rescorers.hook(rescoring))
    return formats.id_values(top[offset:])


def _page(pairs):
    how_many, offset = formats.paging()
    return formats.id_values(pairs[offset:offset + how_many])


@operation("Items to recommend to a user, best first.", query=(*RANKING, CONSIDER_KNOWN_ITEMS),
           answer=id_values_answer(), path={"user": "a user ID"})
@bp.get("/recommend/<user>")
def recommend(user):
    model = _model()
    query = _user_query(model, user)
    exclude = None if formats.bool_param("considerKnownItems") else model.known_rows(user)
    return _ranked(model, query, exclude, rescoring=_rescorer("recommend", [user]))


@operation("Items to recommend to a group of users (the mean of their vectors).",
           query=(*RANKING, CONSIDER_KNOWN_ITEMS), answer=id_values_answer(), path={"users": USERS})
@bp.get("/recommendToMany/<path:users>")
def recommend_to_many(users):
    model = _model()
    names = formats.path_ids(users, "user")
    queries = [_user_query(model, u) for u in names]
    query = Query(np.mean([q.vector for q in queries], axis=0), float(np.mean([q.offset for q in queries])))
    exclude = None if formats.bool_param("considerKnownItems") else model.known_rows(*names)
    return _ranked(model, query, exclude, rescoring=_rescorer("recommend", names))


@operation("Items to recommend to a user who is not in the model, from the items they like.",
           query=RANKING, answer=id_values_answer(), path={"items": ITEM_VALUES})
@bp.get("/recommendToAnonymous/<path:items>")
def recommend_to_anonymous(items):
    model = _model()
    pairs = formats.parse_item_values(formats.path_ids(items, "item"))
    query = model.solve_user(pairs)
    if query is None:  # Oryx: 400, the request names nothing to recommend from
        raise ApiError(400, "none of the items is in the model", items=[i for i, _ in pairs])
    return _ranked(model, query, model.items.rows(i for i, _ in pairs),
                   rescoring=_rescorer("recommend_to_anonymous", [i for i, _ in pairs]))


@operation("Items to recommend to a user, as if they also liked the given items.",
           query=(*RANKING, CONSIDER_KNOWN_ITEMS), answer=id_values_answer(),
           path={"user": "a user ID", "items": ITEM_VALUES})
@bp.get("/recommendWithContext/<user>/", defaults={"items": ""})
@bp.get("/recommendWithContext/<user>/<path:items>")
def recommend_with_context(user, items):
    model = _model()
    pairs = formats.parse_item_values(formats.split_path(items))
    without_context = _user_query(model, user)
    query = model.solve_user(pairs, user=user) or without_context
    known = () if formats.bool_param("considerKnownItems") else (user,)
    return _ranked(model, query, model.known_rows(*known, extra=[i for i, _ in pairs]),
                   rescoring=_rescorer("recommend", [user]))


@operation("Items most similar to all of the given items: the cosine to the sum of their vectors, as Oryx.",
           query=RANKING, answer=id_values_answer(), path={"items": ITEMS})
@bp.get("/similarity/<path:items>")
def similarity(items):
    model = _model()
    names = formats.path_ids(items, "item")
    # Oryx's CosineAverageFunction: the cosine of each item to the sum of the raw vectors (the ranker's
    # cosine divides by each item's norm; the query's is divided here, so the scores are cosines)
    summed = np.sum([_item_vector(model, i) for i in names], axis=0, dtype=np.float64)
    query = (summed / (np.linalg.norm(summed) or 1.0)).astype(np.float32)
    return _ranked(model, query, model.items.rows(names), cosine=True, rescoring=_rescorer("most_similar_items"))


@operation("Cosine similarity of each given item to one item.", answer=values_answer(),
           path={"to_item": "the item to compare with", "items": ITEMS})
@bp.get("/similarityToItem/<to_item>/<path:items>")
def similarity_to_item(to_item, items):
    model = _model()
    vector = _item_vector(model, to_item)
    return formats.values([v for _, v in model.cosine_to(vector, formats.path_ids(items, "item"))])


@operation("Estimated strength of a user's preference for each item.", answer=values_answer(),
           path={"user": "a user ID", "items": ITEMS})
@bp.get("/estimate/<user>/<path:items>")
def estimate(user, items):
    model = _model()
    return formats.values(model.estimates(model.user_query(user), formats.path_ids(items, "item")))


@operation("Estimated strength for one item of a user who is not in the model.",
           answer=value_answer(what="one value"),
           path={"to_item": "the item to estimate for", "items": ITEM_VALUES})
@bp.get("/estimateForAnonymous/<to_item>/<path:items>")
def estimate_for_anonymous(to_item, items):
    model = _model()
    _item_vector(model, to_item)
    query = model.solve_user(formats.parse_item_values(formats.path_ids(items, "item")))
    return formats.value(model.estimates(query, [to_item])[0])


@operation("The user's known items that most explain a recommendation of the item.", query=PAGING,
           answer=id_values_answer(), path={"user": "a user ID", "item": "an item ID"})
@bp.get("/because/<user>/<item>")
def because(user, item):
    model = _model()
    vector = _item_vector(model, item)
    pairs = model.cosine_to(vector, model.known_items(user))  # an unknown user knows nothing: [] (Oryx)
    return _page(sorted(pairs, key=lambda p: -p[1]))


@operation("The user's known items the model explains least, least first.", query=PAGING,
           answer=id_values_answer(what="IDs with their estimates, lowest first"), path={"user": "a user ID"})
@bp.get("/mostSurprising/<user>")
def most_surprising(user):
    model = _model()
    query = _user_query(model, user)
    known = model.known_items(user)
    pairs = list(zip(known, model.estimates(query, known)))
    return _page(sorted(pairs, key=lambda p: p[1]))


@operation("One representative item per feature (the item with the largest value in it).",
           answer=ids_answer(), errors=())
@bp.get("/popularRepresentativeItems")
def popular_representative_items():
    view = _model().items.view
    return formats.ids(view.ids[np.argmax(view.vectors, axis=0)].tolist() if len(view.ids) else [])


def _top_counts(counts, use: str):
    """The largest counts, less what the use's rescorer filters (Oryx: only isFiltered counts here)."""
    how_many, offset = formats.paging()
    ranked = counts.most_common()
    rescoring = _rescorer(use)
    if rescoring is not None and ranked:
        ranked = [pair for pair, k in zip(ranked, rescorers.kept(rescoring, [i for i, _ in ranked])) if k]
    return formats.id_values(ranked[offset:offset + how_many], value_name="count")


@operation("Items with the most users.", query=RANKING,
           answer=id_values_answer("count", "IDs with their counts, largest first"), errors=(400,))
@bp.get("/mostPopularItems")
def most_popular_items():
    return _top_counts(_model().popularity()[0], "most_popular_items")


@operation("Users with the most items.", query=PAGING,
           answer=id_values_answer("count", "IDs with their counts, largest first"), errors=(400,))
@bp.get("/mostActiveUsers")
def most_active_users():
    return _top_counts(_model().popularity()[1], "most_active_users")


@operation("The items a user interacted with (none for a user the model does not know).", answer=ids_answer(),
           path={"user": "a user ID"}, errors=())
@bp.get("/knownItems/<user>")
def known_items(user):
    return formats.ids(_model().known_items(user))  # an unknown user knows nothing: [] (Oryx)


@operation("Every item ID in the model.", answer=ids_answer(), errors=())
@bp.get("/item/allIDs")
def all_item_ids():
    return formats.ids(_model().items.view.ids.tolist())


@operation("Every user ID in the model.", answer=ids_answer(), errors=())
@bp.get("/user/allIDs")
def all_user_ids():
    return formats.ids(_model().users.view.ids.tolist())


# --- writes: lines to <id>.input ------------------------------------------------------------------

def _send_event(user: str, item: str, strength: str):
    """Send one ``user,item,strength,now`` line once the input format accepts it (a 400 naming why, else)."""
    line = f"{formats.csv_field(user)},{formats.csv_field(item)},{strength},{int(time.time() * 1000)}"
    formats.parse_lines(input_format(), [line])
    send_input_lines([line])
    return jsonify({"sent": 1})


@operation("Record that a user likes an item (an input event).", writes=True, answer=SENT_ANSWER,
           body=STRENGTH_BODY, path={"user": "a user ID", "item": "an item ID"}, errors=(400,))
@bp.post("/pref/<user>/<item>")
def add_preference(user, item):
    raw = formats.body_text().strip().splitlines()
    text = raw[0].strip() if raw else ""
    try:
        strength = float(text) if text else 1.0
    except ValueError:
        raise formats.bad_parameter("strength", "a finite number (the request body)", text) from None
    if not np.isfinite(strength):
        raise formats.bad_parameter("strength", "a finite number (the request body)", text)
    return _send_event(user, item, repr(strength))


@operation("Delete a user's preference for an item (an input event).", writes=True, answer=SENT_ANSWER,
           path={"user": "a user ID", "item": "an item ID"}, errors=(400,))
@bp.delete("/pref/<user>/<item>")
def delete_preference(user, item):
    return _send_event(user, item, "")


@operation("Send input events, all or nothing.", writes=True, answer=SENT_ANSWER,
           body=lines_body("Events `user,item[,strength[,timestamp_ms]]` (CSV or JSON arrays; an empty "
                           "strength deletes)",
                           "u1,i1,1.0\nu2,i1,"), errors=(400,))
@bp.post("/ingest")
def ingest():
    """CSV or JSON-array lines; all-or-nothing, so a client can fix and resend without duplicates."""
    from headwater.input_format import safe_parse

    lines = formats.body_lines()
    rejected = safe_parse(input_format(), lines).rejected
    if rejected:
        raise ApiError(400, f"{len(rejected)} of {len(lines)} lines are not valid user,item[,strength[,timestamp]] "
                            "events; nothing was sent",
                       rejected=[{"line": index + 1, "reason": reason} for index, reason in rejected[:100]])
    return jsonify({"sent": send_input_lines(lines) if lines else 0})
