"""Request bodies as Oryx's serving layer accepts them: plain, gzip/deflate, zip, or multipart with such parts.

A body (already bounded by ``headwater.serving.max-body-bytes``) is decoded to bytes by its
``Content-Type`` and ``Content-Encoding``:

- ``multipart/form-data``: every part in order (Oryx's ``/ingest``, ``/add``, ``/train`` uploads), each
  decoded by its own ``Content-Type`` (``application/zip``; ``application/gzip`` or ``x-gzip``), its
  ``Content-Encoding`` or its file name (``.zip``, ``.gz``), else taken as text;
- ``application/zip``: the text of every file in the archive, in archive order;
- ``Content-Encoding: gzip`` / ``deflate``: inflated as a stream.

Everything inflated (gzip members, zip members, across all parts) shares one budget of
``headwater.serving.max-inflated-bytes``: past it the request is refused with a 413 as soon as the
inflating output passes it, so a zip or gzip bomb costs that many bytes and no more. Parts and files
are joined with a line break, so the last line of one never runs into the first of the next.

>>> text = decoded_body([b"u1,i1,1\\n"], "text/plain", "identity", 100).decode()
>>> text
'u1,i1,1\\n'
"""
from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from serving_layer.errors import ApiError

# zlib window bits: gzip framing, zlib (HTTP's "deflate") framing
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
GZIP_TYPES = ("application/gzip", "application/x-gzip")
# a multipart body names at most this many parts (Oryx puts no bound; one request must not hold millions)
MAX_PARTS = 1000
READ_BYTES = 64 * 1024


def too_large(what: str, limit: int, key: str) -> ApiError:
    return ApiError(413, f"{what}, more than {limit} (headwater.serving.{key})", limit=limit)


class InflateBudget:
    """The bytes that inflating may still produce in this request."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise too_large(f"the {what} inflates to more bytes", self.limit, "max-inflated-bytes")

    @property
    def left(self) -> int:
        return self.limit - self.used


def decoded_body(chunks: Iterable[bytes], content_type: str | None, encoding: str, inflate_limit: int) -> bytes:
    """The body's bytes, decoded as the module docstring says; a 400/413/415 ``ApiError`` if it cannot be."""
    budget = InflateBudget(inflate_limit)
    if encoding not in ("identity", *WBITS):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or deflate)")
    if encoding != "identity":
        chunks = inflated(chunks, encoding, budget)
    media, options = parse_options_header(content_type or "")
    if media == "multipart/form-data":
        if not options.get("boundary"):
            raise ApiError(400, "a multipart/form-data body needs a boundary in its Content-Type")
        return b"\n".join(_part_bytes(part, budget) for part in multipart_parts(chunks, options["boundary"]))
    if media in ZIP_TYPES:
        return zip_text(b"".join(chunks), budget)
    return b"".join(chunks)


def inflated(chunks: Iterable[bytes], encoding: str, budget: InflateBudget) -> Iterator[bytes]:
    """Inflate ``chunks`` as a stream (concatenated gzip members too), a 413 once past the budget."""
    inflater, started = zlib.decompressobj(WBITS[encoding]), False
    try:
        for chunk in chunks:
            started = True
            data = chunk
            while data:
                # never more than the budget allows (+1 to notice going past it): a bomb stops here
                out = inflater.decompress(data, budget.left + 1)
                budget.take(len(out), f"{encoding} body")
                yield out
                if inflater.eof:
                    data = inflater.unused_data
                    if data and encoding == "gzip":  # another gzip member follows
                        inflater = zlib.decompressobj(WBITS[encoding])
                    elif data:
                        raise ApiError(400, f"the body has data after the end of the {encoding} stream")
                else:
                    data = inflater.unconsumed_tail
        if started and not inflater.eof:
            raise ApiError(400, f"the body is not valid {encoding} data: it ends before the stream does")
    except zlib.error as exc:
        raise ApiError(400, f"the body is not valid {encoding} data: {exc}") from None


def multipart_parts(chunks: Iterable[bytes], boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, raw bytes) of every part of a multipart body (form fields and files alike)."""
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
    parts: list[tuple[dict[str, str], bytes]] = []
    current: list[bytes] = []
    finished = False
    try:
        for chunk in [*chunks, None]:
            decoder.receive_data(chunk)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    headers = {k.lower(): v for k, v in event.headers.items()}
                    headers["filename"] = getattr(event, "filename", "") or ""
                    current = []
                    parts.append((headers, b""))
                elif isinstance(event, Data):
                    current.append(event.data)
                    if not event.more_data:
                        parts[-1] = (parts[-1][0], b"".join(current))
                event = decoder.next_event()
            if isinstance(event, Epilogue):
                finished = True
                break
    except ValueError as exc:  # werkzeug's error for a malformed body or too many parts
        raise ApiError(400, f"the multipart body cannot be read: {exc}") from None
    if not finished:
        raise ApiError(400, "the multipart body ends before its closing boundary")
    if not parts:
        raise ApiError(400, "the multipart body has no parts")
    return parts


def _part_bytes(part: tuple[dict[str, str], bytes], budget: InflateBudget) -> bytes:
    headers, data = part
    media = parse_options_header(headers.get("content-type", ""))[0]
    encoding = headers.get("content-encoding", "identity").strip().lower()
    name = headers["filename"].lower()
    if media in ZIP_TYPES or name.endswith(".zip"):
        return zip_text(data, budget)
    if media in GZIP_TYPES or name.endswith(".gz"):
        encoding = "gzip"
    if encoding == "identity":
        return data
    if encoding not in WBITS:
        raise ApiError(415, f"a part's Content-Encoding {encoding!r} is not supported (use gzip or deflate)")
    return b"".join(inflated([data], encoding, budget))


def zip_text(data: bytes, budget: InflateBudget) -> bytes:
    """Every file of a zip archive, read within the budget (a member's declared size is not trusted)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
        texts = []
        for info in members:
            with archive.open(info) as member:
                pieces = []
                while piece := member.read(min(READ_BYTES, budget.left + 1)):
                    budget.take(len(piece), f"zip member {info.filename!r}")
                    pieces.append(piece)
            texts.append(b"".join(pieces))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ApiError(400, f"the body is not a readable zip archive: {exc}") from None
    return b"\n".join(texts)
