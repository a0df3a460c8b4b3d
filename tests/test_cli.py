"""The ``headwater`` command line: file ingestion to Kafka and config errors as a user meets them."""


from headwater.cli import main


def test_a_config_error_exits_2_naming_the_key(tmp_path, capsys):
    conf = tmp_path / "bad.conf"
    conf.write_text('headwater { id = "x", app = "als", serving.prot = 1 }')
    assert main(["stack", "status", "--conf", str(conf)]) == 2
    assert "headwater.serving.prot is not a headwater configuration key" in capsys.readouterr().err


def test_a_missing_input_file_is_a_clear_error(capsys):
    assert main(["ingest", "/no/such/file", "-D", "headwater.id=x", "-D", "headwater.app=als"]) == 2
    assert "/no/such/file does not exist" in capsys.readouterr().err
