"""Real Meltano (test/clients/requirements-meltano.txt) runs the repository's own meltano.yml, the file
users copy, against the bundled mock API: `config test`, `select`, and two `meltano run tap-circleci
target-duckdb` with the mock's clock moved between them into a real DuckDB file, which is then queried.

tap-circleci is found the way meltano.yml's header says: a `tap-circleci` on PATH (here a symlink to
the built dist/cli/singer.js; `npm link` makes the same). Nothing is pip-installed for the tap.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import CURSORS, KEYS, ROOT, by_key, changed_keys, differences, instant, key_of, report

START_DATE = "2025-01-01T00:00:00Z"  # meltano.yml's config
SLUGS = ["gh/acme/api"]  # meltano.yml's config
JOB = "dev:tap-circleci-to-target-duckdb"  # Meltano's state ID: <environment>:<tap>-to-<target>
RUNS_APART_HOURS = 30


def meltano(project: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([os.environ.get("MELTANO_BIN", "meltano"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"meltano {' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory, mock):
    """A Meltano project folder holding a byte-for-byte copy of the repository's meltano.yml (so that
    `meltano select` edits the copy), tap-circleci on PATH, the settings users put in .env given as
    the environment variables Meltano reads, and a fresh system database (Meltano's state store)."""
    folder = tmp_path_factory.mktemp("meltano-project")
    shutil.copyfile(ROOT / "meltano.yml", folder / "meltano.yml")
    assert (folder / "meltano.yml").read_bytes() == (ROOT / "meltano.yml").read_bytes()
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "tap-circleci").symlink_to(ROOT / "dist/cli/singer.js")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TAP_CIRCLECI_TOKEN": mock.token,
        "TAP_CIRCLECI_BASE_URL": mock.base_url,
        # Fresh state for each test run; the plugin venvs stay in MELTANO_SYS_DIR_ROOT (set by
        # scripts/test-clients.sh) so that target-duckdb is installed once per pinned version.
        "MELTANO_DATABASE_URI": f"sqlite:///{folder / 'meltano.db'}",
        # Nothing leaves the machine: no usage statistics, no version check.
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "NO_COLOR": "1",
    }
    return folder, env


@pytest.fixture(scope="module")
def selection(project):
    """`meltano select --list` as meltano.yml has it, then after opting in to job_details the way
    its comment says (`meltano select tap-circleci job_details '*'`); tests stays left out."""
    folder, env = project
    before = meltano(folder, env, "select", "tap-circleci", "--list").stdout
    meltano(folder, env, "select", "tap-circleci", "job_details", "*")
    after = meltano(folder, env, "select", "tap-circleci", "--list").stdout
    return before, after


def selected_streams(listing: str) -> set[str]:
    """Streams with at least one property marked [selected] or [automatic] in `select --list`."""
    out = set()
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("[selected") or line.startswith("[automatic"):
            out.add(line.split("]", 1)[1].strip().split(".")[0])
    return out


def query(db: Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def load_table(db: Path, stream: str) -> tuple[list[dict], set[str]]:
    """Every row of circleci.<stream> as a dict, and its JSON-typed columns."""
    _, types = query(db, f"select column_name, data_type from information_schema.columns where table_schema = 'circleci' and table_name = '{stream}'")
    columns, rows = query(db, f'select * from circleci."{stream}"')
    return [dict(zip(columns, r)) for r in rows], {name for name, t in types if t == "JSON"}


def tables(db: Path) -> set[str]:
    return {r[0] for r in query(db, "select table_name from information_schema.tables where table_schema = 'circleci'")[1]}


def emits_from(state: dict, stream: str) -> dict[str, datetime]:
    """Where the next sync emits `stream` from, per project: the oldest of the bookmark, its signpost
    and unfinished_from (README, "State")."""
    out = {}
    for p in state["singer_state"]["bookmarks"].get(stream, {}).get("partitions", []):
        values = [p.get(k) for k in ("replication_key_value", "signpost", "unfinished_from") if p.get(k)]
        out[p["context"]["project_slug"]] = min(instant(v) for v in values)
    return out


@pytest.fixture(scope="module")
def runs(project, selection, mock):
    """Two `meltano run tap-circleci target-duckdb`, the mock's clock moved between them; what the
    database holds and `meltano state get` shows after each, and the ground truth at each clock."""
    folder, env = project
    db = folder / "warehouse.duckdb"
    out = []
    for i in range(2):
        if i:
            mock.advance(RUNS_APART_HOURS)
        mark = datetime.now()  # target-duckdb stamps _sdc_batched_at with the local wall clock
        started = time.monotonic()
        done = meltano(folder, env, "run", "tap-circleci", "target-duckdb")
        (folder / f"run-{i + 1}.log").write_text(done.stderr)
        seconds = time.monotonic() - started
        state = json.loads(meltano(folder, env, "state", "get", JOB).stdout)
        loaded = {s: load_table(db, s) for s in tables(db)}
        out.append({"mark": mark, "seconds": seconds, "state": state, "loaded": loaded, "truth": mock.truth(START_DATE, SLUGS), "log": done.stderr})
        report(f"run {i + 1} ({seconds:.1f} s): meltano state get {JOB}: {json.dumps(state, sort_keys=True)}")
    return db, out


SYNCED = ["projects", "pipelines", "workflows", "jobs", "job_details"]


def test_the_project_is_the_repositorys_meltano_yml_with_tap_circleci_as_a_custom_extractor_on_path():
    spec = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = next(p for p in spec["plugins"]["extractors"] if p["name"] == "tap-circleci")
    assert tap["executable"] == "tap-circleci" and "pip_url" not in tap
    loader = next(p for p in spec["plugins"]["loaders"] if p["name"] == "target-duckdb")
    assert loader["pip_url"].startswith("target-duckdb==")


def test_config_test_exits_0(project):
    folder, env = project
    done = meltano(folder, env, "config", "test", "tap-circleci", check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "Plugin configuration is valid"), done.stderr[-3000:]


def test_select_list_shows_the_files_selection_and_an_opt_in_adds_a_stream(selection):
    before, after = selection
    assert selected_streams(before) == {"projects", "pipelines", "workflows", "jobs"}
    assert selected_streams(after) == {"projects", "pipelines", "workflows", "jobs", "job_details"}
    # Keys and replication keys are kept whatever the selection (Singer "automatic").
    assert "[automatic  ] jobs._workflow_created_at" in after


def test_meltano_run_uses_the_installed_loader_and_the_tap_on_path(runs):
    _, out = runs
    for run in out:
        # `meltano run` installs a plugin only when its pip_url changed: the pinned venv is reused.
        assert "Installing loader" not in run["log"]
        assert "tap-circleci INFO tap-circleci: Sync finished" in run["log"]


def test_only_the_selected_streams_are_loaded(runs):
    _, out = runs
    for run in out:
        assert set(run["loaded"]) == set(SYNCED)


@pytest.mark.parametrize("run_index", [0, 1])
def test_the_loaded_tables_equal_the_ground_truth(runs, run_index):
    _, out = runs
    run = out[run_index]
    problems = []
    for s in SYNCED:
        rows, json_columns = run["loaded"][s]
        loaded = by_key(s, rows)
        # One row per key: target-duckdb upserts on the stream's key_properties.
        assert len(loaded) == len(rows), s
        problems += differences(s, loaded, run["truth"][s], json_columns, ignore=("_sdc_batched_at", "_sdc_extracted_at", "_sdc_deleted_at"))
        report(f"run {run_index + 1}: {s}: {len(rows)} rows in circleci.{s}, {len(by_key(s, run['truth'][s]))} in the ground truth by key")
    assert not problems, "\n".join(problems[:30])


def test_the_second_run_loaded_what_changed_and_nothing_before_the_bookmarks(runs):
    _, (first, second) = runs
    for s in SYNCED:
        rows, _ = second["loaded"][s]
        reloaded = {key_of(s, r): r for r in rows if r["_sdc_batched_at"] >= second["mark"]}
        changed = changed_keys(s, first["truth"][s], second["truth"][s])
        # Everything that changed or is new since the first run was loaded by the second.
        missed = changed - reloaded.keys()
        assert not missed, f"{s}: changed since run 1 but not loaded by run 2: {[by_key(s, second['truth'][s])[k] for k in sorted(missed)][:3]}"
        if s in CURSORS:
            # ...and nothing that the first run's bookmarks had already covered.
            floor = emits_from(first["state"], s)
            early = [k for k, r in reloaded.items() if instant(r[CURSORS[s]]) < floor[r.get("project_slug") or r.get("_project_slug")]]
            assert early == [], s
            assert len(reloaded) < len(rows), s
        report(f"run 2: {s}: {len(reloaded)} rows loaded ({len(changed)} changed or new in the ground truth), {len(rows)} rows in the table")


def test_meltano_keeps_the_state_and_it_moves_forward(runs):
    _, (first, second) = runs
    for s in ("pipelines", "workflows", "jobs", "job_details"):
        a, b = emits_from(first["state"], s), emits_from(second["state"], s)
        assert set(a) == set(b) == set(SLUGS), s
        assert all(b[slug] >= a[slug] for slug in SLUGS), s
    assert emits_from(second["state"], "pipelines")["gh/acme/api"] > emits_from(first["state"], "pipelines")["gh/acme/api"]
