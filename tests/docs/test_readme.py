"""The README's commands and code are the ones CI and users run."""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import REPO

README = (REPO / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = [block.strip() for block in code_blocks("bash")]
    assert len(commands) == 2
    main_job, test_suite = commands
    assert "pip install ." in main_job and "hamkit" in main_job
    ci = (REPO / ".ci" / "run").read_text()
    # CI makes its own venv, then runs the README's install and test commands verbatim
    install, test = test_suite.split(" && ")[-2:]
    assert install in ci and test in ci


def test_python_example_runs(tmp_path):
    (block,) = code_blocks("python")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert Path(tmp_path / "demo-data" / "split.csv").is_file()
