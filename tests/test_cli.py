"""The ``bk`` dispatcher: help, version, unknown commands, every subcommand's --help."""

from __future__ import annotations

import importlib

import pytest

from bkmodel import cli


class TestDispatcher:
    def test_help_lists_every_command(self, capsys):
        assert cli.main([]) == 0
        out = capsys.readouterr().out
        for name in cli.COMMANDS:
            assert name in out

    def test_version(self, capsys):
        assert cli.main(["--version"]) == 0
        assert "resnet-bk" in capsys.readouterr().out

    def test_unknown_command_fails(self, capsys):
        with pytest.raises(SystemExit) as exc:
            cli.main(["no-such-command"])
        assert exc.value.code == 2

    @pytest.mark.parametrize("name", sorted(cli.COMMANDS))
    def test_subcommand_module_contract(self, name):
        module = importlib.import_module(cli.COMMANDS[name][0])
        assert callable(module.configure_parser)
        assert callable(module.run)

    @pytest.mark.parametrize("name", sorted(cli.COMMANDS))
    def test_subcommand_help(self, name, capsys):
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert f"bk {name}" in capsys.readouterr().out


def test_train_override_flags_have_help_and_defaults():
    # issue 21, item 9: every override flag of `bk train --help` says what it is and where
    # its value comes from when omitted (the TrainConfig default or each preset's value)
    import os
    import re
    import subprocess
    import sys

    from bkmodel.train import FIELD_HELP, _override_fields

    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "bkmodel.cli", "train", "--help"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    section = p.stdout.split("overrides of the preset:", 1)[1]
    # one entry per flag: its line and the continuation lines (help below a long flag)
    entries = {e.split()[0]: " ".join(e.split()) for e in re.split(r"\n(?=  --)", section)
               if e.startswith("  --")}
    for name, _ in _override_fields():
        assert name in FIELD_HELP, name  # a new TrainConfig field needs its line
        entry = entries[f"--{name.replace('_', '-')}"]
        assert "default" in entry, entry
        assert FIELD_HELP[name] in entry, entry
    assert "default: the preset's (ci 30, tiny 400, small 3000, medium 10000)" in \
        entries["--max-steps"]
    assert entries["--beta1"].endswith("AdamW beta1; default 0.9")
    assert entries["--max-consecutive-nonfinite"].endswith("default 3")
