"""Full flow runs against the local Prefect server, the fixture server and emulated S3 (moto)."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ConnectionClosedError
from prefect.settings import PREFECT_API_URL, temporary_settings

from gainers_elt import flow as flow_module
from gainers_elt.transform import output_columns

pytestmark = pytest.mark.integration
FLOW_APP = Path(flow_module.__file__).resolve().parents[1]


@pytest.fixture
def prefect_api(flow_stack, monkeypatch):
    """Run flows in-process against the stack's Prefect server, with I/O retries that do not wait."""
    for name in ("fetch_source_page", "get_fx_rate", "load_to_s3"):
        monkeypatch.setattr(flow_module, name, getattr(flow_module, name).with_options(retry_delay_seconds=0))
    with temporary_settings(updates={PREFECT_API_URL: flow_stack.prefect_api_url}):
        yield flow_stack.prefect_api_url


def run(**params):
    """Run the flow; return (state, result or exception)."""
    state = flow_module.top_gainers_elt(http_retries=1, **params, return_state=True)
    return state, state.result(raise_on_failure=False)


def objects(s3, bucket):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def hits(stack, path):
    with urllib.request.urlopen(f"{stack.fixtures_url}/hits?path={path}", timeout=5) as resp:
        return json.load(resp)["hits"]


def test_flow_run_writes_one_csv_and_artifacts(prefect_api, flow_stack, aws, results_bucket):
    state, result = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/gainers-losers/",
                        fx_api_url=f"{flow_stack.fixtures_url}/latest")
    assert state.is_completed(), result
    run_id = str(state.state_details.flow_run_id)
    assert objects(aws, results_bucket) == [result["key"]]
    assert result["uri"] == f"s3://{results_bucket}/{result['key']}"
    assert result["key"].startswith("top-gainers/dt=") and result["key"].endswith(f"_{run_id}.csv")
    assert (result["rows"], result["fx_rate"], result["fx_date"]) == (30, "1.5123", "2024-05-10")

    obj = aws.get_object(Bucket=results_bucket, Key=result["key"])
    assert obj["ContentType"] == "text/csv; charset=utf-8" and obj["ServerSideEncryption"] == "AES256"
    rows = list(csv.DictReader(io.StringIO(obj["Body"].read().decode())))
    assert list(rows[0]) == output_columns("AUD")
    assert len(rows) == 30
    assert rows[0]["symbol"] == "PEPEM" and rows[0]["price_usd"] == "0.00005123"
    assert rows[0]["price_aud"] == "0.00007748"  # 0.00005123 * 1.5123, half-even at 8 decimals
    assert {r["fx_source"] for r in rows} == {f"{flow_stack.fixtures_url}/latest?base=USD&symbols=AUD"}

    artifacts = httpx.post(f"{prefect_api}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    by_key = {a["key"]: a for a in artifacts}
    assert {"top-gainers-aud", "top-gainers-aud-summary"} <= set(by_key)
    assert by_key["top-gainers-aud"]["type"] == "table"
    assert len(json.loads(by_key["top-gainers-aud"]["data"])) == 30
    assert result["uri"] in by_key["top-gainers-aud-summary"]["data"]


def test_fx_rate_override_skips_the_lookup(prefect_api, flow_stack, aws, results_bucket):
    before = hits(flow_stack, "/status/503")
    state, result = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/gainers-losers/",
                        fx_api_url=f"{flow_stack.fixtures_url}/status/503", fx_rate="0.65", target_currency="EUR")
    assert state.is_completed(), result
    assert hits(flow_stack, "/status/503") == before  # never asked
    body = aws.get_object(Bucket=results_bucket, Key=result["key"])["Body"].read().decode()
    first = next(csv.DictReader(io.StringIO(body)))
    assert (first["fx_rate"], first["fx_source"], first["price_eur"]) == ("0.65", "parameter:fx_rate", "0.00003330")


def test_malformed_page_fails_and_writes_nothing(prefect_api, flow_stack, aws, results_bucket):
    state, exc = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/variants/captcha.html",
                     fx_api_url=f"{flow_stack.fixtures_url}/latest")
    assert state.is_failed()
    assert "expected a table with headers like" in str(exc) and "Just a moment..." in str(exc)
    assert objects(aws, results_bucket) == []


def test_source_down_is_retried_then_fails_and_writes_nothing(prefect_api, flow_stack, aws, results_bucket):
    before = hits(flow_stack, "/status/500")
    state, exc = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/status/500",
                     fx_api_url=f"{flow_stack.fixtures_url}/latest")
    assert state.is_failed()
    assert "500 Server Error" in str(exc) and "/status/500" in str(exc)
    # 3 task attempts (retries=2) x 2 requests each (http_retries=1)
    assert hits(flow_stack, "/status/500") - before == 6
    assert objects(aws, results_bucket) == []


def test_fx_down_without_override_fails_and_writes_nothing(prefect_api, flow_stack, aws, results_bucket):
    before = hits(flow_stack, "/status/503")
    state, exc = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/gainers-losers/",
                     fx_api_url=f"{flow_stack.fixtures_url}/status/503")
    assert state.is_failed()
    assert "503 Server Error" in str(exc)
    assert hits(flow_stack, "/status/503") - before == 6
    assert objects(aws, results_bucket) == []


def test_bad_parameter_fails_before_any_request(prefect_api, flow_stack, aws, results_bucket):
    before = hits(flow_stack, "/gainers-losers/")
    state, exc = run(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/gainers-losers/",
                     target_currency="USD")
    assert state.is_failed() and "must differ from USD" in str(exc)
    assert hits(flow_stack, "/gainers-losers/") == before
    assert objects(aws, results_bucket) == []


def test_retried_flow_run_overwrites_its_own_object(prefect_api, flow_stack, aws, results_bucket, monkeypatch):
    """The upload succeeds, then the run fails and is retried: still exactly one object, same key."""
    real_put, calls = flow_module.put_csv, []

    def put_then_lose_the_answer(*args, **kwargs):
        answer = real_put(*args, **kwargs)
        calls.append(args[2])
        if len(calls) == 1:
            raise ConnectionClosedError(endpoint_url="http://moto")  # written, but the reply was lost
        return answer

    monkeypatch.setattr(flow_module, "put_csv", put_then_lose_the_answer)
    original = flow_module.publish_artifacts.fn
    failures = []

    def flaky_artifacts(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("UI hiccup after the load")
        return original(*args, **kwargs)

    monkeypatch.setattr(flow_module, "publish_artifacts", flow_module.task(flaky_artifacts))
    retrying = flow_module.top_gainers_elt.with_options(retries=1, retry_delay_seconds=0)
    state = retrying(results_bucket=results_bucket, source_url=f"{flow_stack.fixtures_url}/gainers-losers/",
                     fx_api_url=f"{flow_stack.fixtures_url}/latest", http_retries=1, return_state=True)
    result = state.result(raise_on_failure=False)
    assert state.is_completed(), result
    assert len(calls) == 3 and len(set(calls)) == 1  # task retry + flow retry, all to one key
    assert objects(aws, results_bucket) == [result["key"]]


def test_cli_runs_the_flow_like_a_user(flow_stack, aws, results_bucket):
    env = {**os.environ, **flow_stack.aws_env(), "PREFECT_API_URL": flow_stack.prefect_api_url}
    proc = subprocess.run(
        [sys.executable, "-m", "gainers_elt", "--results-bucket", results_bucket,
         "--source-url", f"{flow_stack.fixtures_url}/gainers-losers/",
         "--fx-api-url", f"{flow_stack.fixtures_url}/latest"],
        cwd=FLOW_APP, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert objects(aws, results_bucket) == [result["key"]] and result["rows"] == 30

    failed = subprocess.run(
        [sys.executable, "-m", "gainers_elt", "--results-bucket", results_bucket, "--http-retries", "0",
         "--source-url", f"{flow_stack.fixtures_url}/variants/empty_table.html"],
        cwd=FLOW_APP, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "top-gainers-elt failed: PageFormatError" in failed.stderr and "no data rows" in failed.stderr
    assert objects(aws, results_bucket) == [result["key"]]


def test_flow_loads_from_its_entrypoint_in_any_directory(tmp_path):
    """What Prefect's pull_from_s3 step does: gainers_elt/ dropped into a fresh working dir."""
    shutil.copytree(FLOW_APP / "gainers_elt", tmp_path / "gainers_elt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("from prefect.flows import load_flow_from_entrypoint as load\n"
            "f = load('gainers_elt/flow.py:top_gainers_elt')\n"
            "import gainers_elt, json; print(json.dumps([f.name, gainers_elt.__file__]))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, package_file = json.loads(proc.stdout.strip().splitlines()[-1])
    assert name == "top-gainers-elt"
    assert Path(package_file).resolve().is_relative_to(tmp_path.resolve())


def process_worker(flow_stack, pool: str) -> subprocess.Popen:
    """A Prefect process worker on the host polling `pool` (the flow's own test harness: the product's
    worker is the ECS service, tested end to end in tests/)."""

    def child_setup() -> None:  # a backgrounded worker ignores SIGINT and hangs on SIGTERM otherwise
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    env = {**os.environ, **flow_stack.aws_env(), "PREFECT_API_URL": flow_stack.prefect_api_url,
           "PREFECT_WORKER_QUERY_SECONDS": "2"}
    return subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool,
                             "--type", "process"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=child_setup)


def stop_process_worker(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_deployment_pulls_the_code_from_s3_and_runs_on_a_worker(flow_stack, aws, results_bucket):
    """The path a deployment takes: code in the flow-storage bucket, pull_from_s3, a process worker."""
    from prefect.utilities.callables import parameter_schema_from_entrypoint

    tag = os.urandom(4).hex()
    storage, folder, pool = f"flow-storage-test-{tag}", f"flows/{tag}", f"flow-app-test-{tag}"
    aws.create_bucket(Bucket=storage)
    for path in sorted((FLOW_APP / "gainers_elt").glob("*.py")):
        aws.upload_file(str(path), storage, f"{folder}/gainers_elt/{path.name}")
    # The image installs flow_common (flow_app/Dockerfile); a process worker on the host has only the pulled folder,
    # which Prefect puts on sys.path: the shared package goes next to the flow's.
    for path in sorted((FLOW_APP / "flow_common").glob("*.py")):
        aws.upload_file(str(path), storage, f"{folder}/flow_common/{path.name}")
    api = httpx.Client(base_url=flow_stack.prefect_api_url, timeout=30)
    api.post("/work_pools/", json={"name": pool, "type": "process"}).raise_for_status()
    flow_id = api.post("/flows/", json={"name": "top-gainers-elt"}).json()["id"]
    schema = parameter_schema_from_entrypoint(f"{FLOW_APP}/gainers_elt/flow.py:top_gainers_elt").model_dump()
    deployment = api.post("/deployments/", json={
        "name": f"test-{tag}", "flow_id": flow_id, "work_pool_name": pool,
        "entrypoint": "gainers_elt/flow.py:top_gainers_elt",
        "pull_steps": [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": storage, "folder": folder}}],
        "parameters": {"results_bucket": results_bucket, "source_url": f"{flow_stack.fixtures_url}/gainers-losers/",
                       "fx_api_url": f"{flow_stack.fixtures_url}/latest"},
        "parameter_openapi_schema": schema, "enforce_parameter_schema": True,
    })
    deployment.raise_for_status()
    worker = process_worker(flow_stack, pool)
    try:
        run_id = api.post(f"/deployments/{deployment.json()['id']}/create_flow_run",
                          json={"parameters": {"target_currency": "AUD"}}).json()["id"]
        state = {}
        for _ in range(120):
            state = api.get(f"/flow_runs/{run_id}").json()["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state["type"] == "COMPLETED", state
        keys = objects(aws, results_bucket)
        assert len(keys) == 1 and keys[0].endswith(f"_{run_id}.csv")
    finally:
        stop_process_worker(worker)
        api.delete(f"/deployments/{deployment.json()['id']}")
        api.delete(f"/work_pools/{pool}")
