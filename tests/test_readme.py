"""The README's promise, kept honest: its install-and-demo command, run exactly as written,
in a fresh copy of the repository with a brand-new virtual environment."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, re.S)


def fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".venv", "*.db", ".git"))
        return target
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def test_the_readme_names_two_commands() -> None:
    install_and_demo, run_tests = readme_commands()
    assert install_and_demo.endswith("campaign-sync demo")
    assert "pip install" in install_and_demo
    assert run_tests.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and ci.rstrip().endswith("pytest")


def test_the_readme_install_and_demo_works_in_a_new_virtualenv(tmp_path: Path) -> None:
    install_and_demo = readme_commands()[0]
    checkout = fresh_copy(tmp_path / "campaign-sync")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATCH_", "CAMPAIGN_SYNC_", "DATABASE_URL", "VIRTUAL_ENV"))
    }
    result = subprocess.run(
        ["bash", "-c", install_and_demo],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "Second pass: only what changed is fetched" in result.stdout
    assert "sqlite3 campaign_sync.db" in result.stdout
    database = checkout / "campaign_sync.db"
    assert database.exists()
    with sqlite3.connect(database) as conn:
        (stored,) = conn.execute("select count(*) from campaigns").fetchone()
        (runs,) = conn.execute(
            "select count(*) from sync_runs where status = 'succeeded'"
        ).fetchone()
    assert stored == 651  # 400 push + 250 in-app, and one created before the second pass
    assert runs == 4


def test_every_setting_is_documented_in_the_readme() -> None:
    from tests.test_containers import known_variables

    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(name for name in known_variables() if name not in readme)
    assert undocumented == []
