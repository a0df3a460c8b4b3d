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


def test_a_bad_override_names_its_key_but_not_its_value(capsys):
    assert main(["stack", "status", "-D", "headwater.id=x", "-D", "headwater.app=als",
                 "-D", "headwater.serving.port=s3cret-value"]) == 2
    err = capsys.readouterr().err
    assert "headwater.serving.port must be an int" in err and "in -D headwater.serving.port," in err
    assert main(["stack", "status", "-D", "headwater.id=x", "-D", "headwater.app=als",
                 "-D", "headwater.kafka.sasl.password=[1]"]) == 2
    err = capsys.readouterr().err
    assert "headwater.kafka.sasl.password" in err and "[1]" not in err and "not shown" in err


def test_demo_layers_get_their_overrides_through_the_environment_not_the_command_line(tmp_path):
    import subprocess

    from headwater.cli.demo import layer_command

    secret = "tok-3f9c2a"
    args, env = layer_command("stack", "conf/als.conf", [
        f'headwater.serving.api.read-tokens=["{secret}"]', f'headwater.stack.var-dir="{tmp_path}"',
        "headwater.serving.port=not-a-port"])
    assert secret not in " ".join(args) and "-D" not in args
    # the child applies them (its config error names the key the environment set), and shows no secret
    done = subprocess.run([*args[:3], "stack", "status", "--conf", "conf/als.conf"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "headwater.serving.port must be an int in the range [0, 65535] in -D headwater.serving.port" in done.stderr
    assert secret not in done.stderr + done.stdout


def test_overrides_from_the_environment_must_be_a_json_list(monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_CONFIG_OVERRIDES", "headwater.id=x")
    assert main(["stack", "status"]) == 2
    assert "HEADWATER_CONFIG_OVERRIDES must be a JSON list" in capsys.readouterr().err


def test_a_demo_on_a_stopped_stack_starts_from_a_clean_state_and_keeps_the_logs(make_config, tmp_path, capsys):
    from headwater.cli.demo import DEMO_STATE, _forget_a_stopped_stack
    from headwater.stack import Stack

    stack = Stack(make_config(**{"stack.broker-port": 1, "stack.mlflow-port": 1}))
    (stack.var_dir / "data" / "als-demo").mkdir(parents=True)
    (stack.var_dir / "mlflow.db").write_text("an earlier run's registry")
    stack.log_dir.mkdir(parents=True)
    (stack.log_dir / "speed.log").write_text("kept")
    _forget_a_stopped_stack(stack)
    assert not any((stack.var_dir / name).exists() for name in DEMO_STATE)
    assert (stack.log_dir / "speed.log").read_text() == "kept"
    assert "removed the earlier demo's state" in capsys.readouterr().out
