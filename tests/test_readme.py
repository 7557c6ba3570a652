"""The README says what the code does: every `python SCRIPT.py ...` command in it parses with that script's own
options (and, for main.py and pre_trained_models.py, passes their checks of what goes together), and every file
it links to exists. Commands are parsed, not run: the runs and songs they name are examples.

    pytest tests/test_readme.py
"""
import re
import shlex

import pytest

import app
import baseline
import bench
import config
import pre_trained_models
import results_table
import tune
from conftest import ROOT
from demo.cli import build_parser as demo_parser

README = (ROOT / "README.md").read_text()
COMMANDS = sorted(set(re.findall(r"python ([a-z_]+)\.py((?: [^`#\n|]*)?)", README)))
PARSERS = {"pre_trained_models": pre_trained_models.build_parser, "tune": tune.tune_parser, "app": app.build_parser,
           "baseline": baseline.build_parser, "results_table": results_table.build_parser, "bench": bench.build_parser,
           "demo_data": demo_parser}


def test_the_readme_has_commands_of_every_tool():
    assert {script for script, _ in COMMANDS} >= {"main", "pre_trained_models", "app", "baseline"}
    assert len(README.splitlines()) <= 210


@pytest.mark.parametrize("script, args", COMMANDS, ids=[f"{s}.py{a}" for s, a in COMMANDS])
def test_a_readme_command_parses(script, args):
    argv = shlex.split(args)
    if "--help" in argv:
        return
    if script == "config":  # it takes no option: it prints docs/cli.md
        assert argv in ([], [">", "docs/cli.md"]), argv
    elif script == "main":
        run, _, given = config.load_config(argv)
        config.check_run(run, given)
    else:
        parsed = PARSERS[script]().parse_args(argv)
        if script == "pre_trained_models":
            pre_trained_models.check_args(parsed)


def test_every_file_the_readme_links_to_exists():
    for target in re.findall(r"\]\(([^)#]+)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
