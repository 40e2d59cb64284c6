"""Real PyAirbyte (the `airbyte` package, test/clients/requirements-airbyte.txt) runs source-circleci the
way Airbyte's docs show Python users: get_source() on the built CLI (local_executable=) and on the
Docker image (docker_image=, when an engine answers), check(), select_all_streams(), then read() twice
into a DuckDB cache with the mock's clock moved between the reads.

PyAirbyte is kept offline: AIRBYTE_OFFLINE_MODE=1 (no connector registry; it also turns telemetry
off, airbyte/constants.py) and DO_NOT_TRACK=1 (airbyte/_util/telemetry.py). A guard on this process's
sockets records any connection or name lookup that would leave the machine, and the test fails on it.
"""
from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

# Set before airbyte is imported: it reads them at import time.
os.environ["AIRBYTE_OFFLINE_MODE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["NO_LIVE_PROGRESS"] = "1"
_PROJECT_DIR = Path(tempfile.mkdtemp(prefix="pyairbyte-project-"))
atexit.register(shutil.rmtree, _PROJECT_DIR, ignore_errors=True)
os.environ["AIRBYTE_PROJECT_DIR"] = str(_PROJECT_DIR)  # its default cache: <dir>/.cache/default_cache

import airbyte as ab  # noqa: E402
from airbyte.caches.util import get_default_cache, new_local_cache  # noqa: E402

from conftest import CURSORS, KEYS, ROOT, Mock, by_key, changed_keys, differences, instant, key_of, report  # noqa: E402

STREAMS = ["projects", "pipelines", "workflows", "jobs", "job_details", "tests"]
START_DATE = "2025-01-01T00:00:00Z"
SLUGS = ["gh/acme/api"]
READS_APART_HOURS = 30
IMAGE = "source-circleci:dev"  # what scripts/docker-build.mjs tags (metadata.yaml dockerRepository)
AIRBYTE_COLUMNS = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id")

# ---- nothing leaves the machine

outbound: list[str] = []
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _is_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost",)


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        outbound.append(f"connect {address}")
        raise OSError(f"test guard: no connection leaves this machine ({address})")
    return _connect(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
        outbound.append(f"lookup {host}")
        raise socket.gaierror(f"test guard: no name lookup leaves this machine ({host})")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.getaddrinfo = _guarded_getaddrinfo


def docker_ready() -> str | None:
    """None when the engine answers and has the image, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "the Docker engine does not answer"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        return f"no image {IMAGE} (npm run docker:build)"
    return None


def cache_rows(cache, stream: str) -> list[dict]:
    return [dict(r) for r in cache[stream]]


def json_columns(cache, stream: str) -> set[str]:
    table = cache.processor.get_sql_table(stream)
    return {c.name for c in table.columns if "JSON" in str(c.type).upper()}


def source_state(cache) -> dict[str, dict]:
    """The per-stream states PyAirbyte keeps in the cache for source-circleci: stream -> stream_state."""
    provider = cache.get_state_provider("source-circleci")
    out = {}
    for artifact in provider.state_message_artifacts:
        s = json.loads(artifact.model_dump_json(exclude_none=True)) if hasattr(artifact, "model_dump_json") else artifact
        stream = s.get("stream", {})
        out[stream["stream_descriptor"]["name"]] = stream.get("stream_state")
    return out


@pytest.fixture(scope="module", params=["local_executable", "docker_image"])
def syncs(request, tmp_path_factory):
    """Two reads through one PyAirbyte source, the mock's clock moved between them: the cache after
    each, the state PyAirbyte kept, and the ground truth at each clock."""
    how = request.param
    if how == "docker_image":
        why = docker_ready()
        if why is not None:
            if os.environ.get("CLIENTS_REQUIRE_DOCKER"):
                pytest.fail(f"CLIENTS_REQUIRE_DOCKER is set but {why}")
            pytest.skip(f"docker_image: {why}")
    mock = Mock()
    try:
        config = {"token": mock.token, "project_slugs": SLUGS, "base_url": mock.base_url, "start_date": START_DATE}
        if how == "local_executable":
            bin_dir = tmp_path_factory.mktemp("bin")
            (bin_dir / "source-circleci").symlink_to(ROOT / "dist/cli/airbyte.js")
            source = ab.get_source("source-circleci", config=config, local_executable=str(bin_dir / "source-circleci"))
            cache = get_default_cache()
        else:
            # The image reaches the mock on the host's 127.0.0.1 through the host's network.
            source = ab.get_source("source-circleci", config=config, docker_image=IMAGE, use_host_network=True)
            cache = new_local_cache("docker_image")
        source.check()
        source.select_all_streams()
        out = []
        for i in range(2):
            if i:
                mock.advance(READS_APART_HOURS)
            mark = datetime.now(timezone.utc)
            started = time.monotonic()
            result = source.read() if how == "local_executable" else source.read(cache=cache)
            seconds = time.monotonic() - started
            out.append({
                "mark": mark,
                "seconds": seconds,
                "records": result.processed_records,
                "rows": {s: cache_rows(result.cache, s) for s in STREAMS},
                "json": {s: json_columns(result.cache, s) for s in STREAMS},
                "state": source_state(result.cache),
                "truth": mock.truth(START_DATE, SLUGS),
            })
            report(f"{how}: read {i + 1} ({seconds:.1f} s, {result.processed_records} records): state {json.dumps(out[-1]['state'], sort_keys=True)}")
        return how, out
    finally:
        mock.close()


def test_the_cached_tables_equal_the_ground_truth_by_key(syncs):
    how, out = syncs
    for i, read in enumerate(out):
        problems = []
        for s in STREAMS:
            rows = read["rows"][s]
            loaded = by_key(s, rows)
            problems += differences(s, loaded, read["truth"][s], read["json"][s], ignore=AIRBYTE_COLUMNS)
            report(f"{how}: read {i + 1}: {s}: {len(rows)} cached rows, {len(loaded)} keys, {len(by_key(s, read['truth'][s]))} in the ground truth")
        assert not problems, "\n".join(problems[:30])


def test_one_cached_row_per_key(syncs):
    # PyAirbyte caches every record it is sent: two with one key would be two rows (a job listed by
    # two workflows once had its details emitted twice, issue 17).
    _, out = syncs
    for read in out:
        for s in STREAMS:
            keys = [key_of(s, r) for r in read["rows"][s]]
            assert len(set(keys)) == len(keys), f"{s}: {len(keys) - len(set(keys))} rows repeat a key"


def test_the_second_read_is_incremental(syncs):
    how, (first, second) = syncs
    assert second["records"] < first["records"] / 2
    for s in STREAMS:
        rows = second["rows"][s]
        fresh = {key_of(s, r): r for r in rows if instant(r["_airbyte_extracted_at"]) >= second["mark"]}
        changed = changed_keys(s, first["truth"][s], second["truth"][s])
        missed = changed - fresh.keys()
        assert not missed, f"{s}: changed since read 1 but not read again: {sorted(missed)[:5]}"
        if s in CURSORS:
            # Nothing older than where read 1's state said to go on from (per project).
            floor = {slug: min(instant(v) for v in values.values() if isinstance(v, str) and v[:1].isdigit()) for slug, values in first["state"][s].items()}
            early = [k for k, r in fresh.items() if instant(r[CURSORS[s]]) < floor[r.get("project_slug") or r.get("_project_slug")]]
            assert early == [], s
        report(f"{how}: read 2: {s}: {len(fresh)} rows written ({len(changed)} changed or new in the ground truth), {len(rows)} cached")


def test_state_is_kept_per_project_and_moves_forward(syncs):
    _, (first, second) = syncs
    for s in CURSORS:
        assert set(first["state"][s]) == set(second["state"][s]) == set(SLUGS), s
    a, b = first["state"]["pipelines"][SLUGS[0]]["updated_at"], second["state"]["pipelines"][SLUGS[0]]["updated_at"]
    assert instant(b) > instant(a)


def test_nothing_left_the_machine():
    assert outbound == []
