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
