"""Uploads as Oryx accepts them: multipart bodies with several parts, zip archives and gzip parts, on every
endpoint that reads lines (/assign here; /ingest, /add, /train in tests/integration/test_serving_writes.py),
with the inflate limit shared by every part and zip member."""
from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from tests.test_kmeans_serving import CENTERS, brute_force, serve_model  # noqa: F401 (a fixture)


def zipped(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def multipart(parts: list[tuple[str | None, str | None, bytes]], boundary: str = "hw-boundary") -> tuple[bytes, dict]:
    """(body, headers) of a multipart/form-data request; each part is (file name, content type, data)."""
    body = b""
    for n, (filename, content_type, data) in enumerate(parts):
        disposition = f'form-data; name="part{n}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def lines_of(points: np.ndarray) -> list[str]:
    return [f"row{n},{x},{y},{z},note" for n, (x, y, z) in enumerate(points)]


def test_a_multipart_body_of_csv_zip_and_gzip_parts_is_read_in_order(serve_model):  # noqa: F811
    client, _ = serve_model()
    points = np.random.default_rng(3).uniform(-2, 12, (30, 3))
    lines = [line.encode() for line in lines_of(points)]
    archive = zipped({"a.csv": b"\n".join(lines[10:15]), "dir/b.csv": b"\n".join(lines[15:20]) + b"\n"})
    body, headers = multipart([(None, "text/csv", b"\n".join(lines[:10])),  # no final line break: still a line
                               ("more.zip", "application/zip", archive),
                               ("rest.csv.gz", "application/octet-stream", gzip.compress(b"\n".join(lines[20:])))])
    answer = client.post("/assign", data=body, headers={**headers, "Accept": "application/json"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == brute_force(points)[0]
    # a zip archive as the whole body, and a zip part found by its name alone
    whole = client.post("/assign", data=archive, headers={"Content-Type": "application/zip",
                                                          "Accept": "application/json"})
    assert whole.get_json() == brute_force(points[10:20])[0]
    body, headers = multipart([("x.zip", None, archive)])
    assert client.post("/assign", data=body, headers={**headers, "Accept": "application/json"}).get_json() \
        == brute_force(points[10:20])[0]


@pytest.mark.parametrize("body, content_type, words", [
    (b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1,2,3\r\n", "multipart/form-data; boundary=b",
     "the multipart body cannot be read"),
    (b"x", "multipart/form-data", "needs a boundary"),
    (b"--b--\r\n", "multipart/form-data; boundary=b", "no parts"),
    (b"PK\x03\x04 not really", "application/zip", "not a readable zip archive"),
])
def test_broken_uploads_are_400_naming_the_problem(serve_model, body, content_type, words):  # noqa: F811
    client, _ = serve_model()
    response = client.post("/assign", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 400 and words in response.get_json()["message"]


def test_a_zip_bomb_in_a_part_is_refused_at_the_shared_inflate_limit(make_config):
    from tests.test_serving_hostile import als_client

    client = als_client(make_config, **{"serving.max-inflated-bytes": 1_000_000})
    bomb = zipped({f"zeros{n}.csv": b"0" * (64 << 20) for n in range(2)})  # 128 MiB inflated, ~130 kB sent
    assert len(bomb) < 400_000
    tracemalloc.start()
    try:
        body, headers = multipart([(None, "text/csv", b"u,i,1\n"), ("bomb.zip", "application/zip", bomb)])
        response = client.post("/ingest", data=body, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert "inflates to more bytes, more than 1000000 (headwater.serving.max-inflated-bytes)" in \
        response.get_json()["message"]
    assert peak < 16_000_000
    # two gzip parts under the limit each but over it together: the budget is shared
    half = gzip.compress(b"u,i,1\n" * 100_000)  # 600 kB inflated
    body, headers = multipart([("a.gz", None, half), ("b.gz", None, half)])
    assert client.post("/ingest", data=body, headers=headers).status_code == 413
