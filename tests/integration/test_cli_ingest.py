"""``headwater ingest FILE``: every non-blank line of a plain or gzip file reaches <id>.input."""
import gzip
import uuid

import pytest

from headwater.cli import main
from headwater.kafka_admin import ensure_topics, true_end_offsets


@pytest.mark.parametrize("compressed", [False, True])
def test_ingest_sends_every_non_blank_line_of_a_file(broker, tmp_path, capsys, compressed):
    app_id = f"cli{uuid.uuid4().hex[:8]}"
    lines = ["u1,i1,1", "u2,i2,", "", "u3,i3,2.5,1700000000000"]
    path = tmp_path / ("events.csv.gz" if compressed else "events.csv")
    text = "\n".join(lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
    ensure_topics(broker, {f"{app_id}.input": 2})

    code = main(["ingest", str(path), "-D", f"headwater.id={app_id}", "-D", "headwater.app=als",
                 "-D", f'headwater.kafka.bootstrap-servers="{broker}"'])

    assert code == 0
    assert f"sent 3 lines from {path} to {app_id}.input" in capsys.readouterr().out
    assert sum(true_end_offsets(broker, f"{app_id}.input").values()) == 3
