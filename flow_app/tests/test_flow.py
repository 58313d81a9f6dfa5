"""Flow-level unit tests: parameter schema, retry classification, CLI options (no servers needed)."""

import inspect
from pathlib import Path

import botocore.exceptions
import pytest
import requests
from prefect.utilities.callables import parameter_schema_from_entrypoint

import flow_common
from gainers_elt import flow as flow_module
from gainers_elt.__main__ import build_parser
from gainers_elt.extract import DEFAULT_SOURCE_URL, PageFormatError
from gainers_elt.transform import DEFAULT_FX_API_URL, FxError

FLOW_FILE = Path(flow_module.__file__)


def test_parameter_schema_from_entrypoint():
    schema = parameter_schema_from_entrypoint(f"{FLOW_FILE}:top_gainers_elt").model_dump()
    props = schema["properties"]
    assert schema["required"] == ["results_bucket"]
    assert props["results_bucket"]["type"] == "string"
    assert props["source_url"]["default"] == DEFAULT_SOURCE_URL == "https://coinmarketcap.com/gainers-losers/"
    assert props["fx_api_url"]["default"] == DEFAULT_FX_API_URL == "https://api.frankfurter.app/latest"
    assert props["target_currency"]["default"] == "AUD"
    assert props["results_prefix"]["default"] == "top-gainers"
    assert props["fx_rate"]["default"] is None
    assert {"type": "null"} in props["fx_rate"]["anyOf"] and {"type": "number"} in props["fx_rate"]["anyOf"]
    assert all(p.get("description") for p in props.values()), "every parameter documented in the UI"


def test_entrypoint_signature_matches_the_flow():
    schema = parameter_schema_from_entrypoint(f"{FLOW_FILE}:top_gainers_elt").model_dump()
    assert list(schema["properties"]) == list(inspect.signature(flow_module.top_gainers_elt.fn).parameters)


def response(status):
    resp = requests.Response()
    resp.status_code = status
    return resp


def client_error(code, status):
    return botocore.exceptions.ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                                           "PutObject")


@pytest.mark.parametrize(("exc", "transient"), [
    (requests.ConnectionError("refused"), True),
    (requests.Timeout("slow"), True),
    (requests.HTTPError(response=response(503)), True),
    (requests.HTTPError(response=response(429)), True),
    (requests.HTTPError(response=response(404)), False),
    (requests.HTTPError(response=response(403)), False),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), True),
    (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), True),
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("AccessDenied", 403), False),
    (client_error("NoSuchBucket", 404), False),
    (PageFormatError("captcha"), False),
    (FxError("no rate"), False),
    (ValueError("bad parameter"), False),
])
def test_only_io_errors_are_retried(exc, transient):
    assert flow_common.is_transient(exc) is transient


def test_io_tasks_retry_and_pure_tasks_do_not():
    for io_task in (flow_module.fetch_source_page, flow_module.get_fx_rate, flow_module.load_to_s3):
        assert io_task.retries == 2 and io_task.retry_condition_fn is flow_common.retry_on_io
    for pure_task in (flow_module.parse_page, flow_module.transform, flow_module.publish_artifacts):
        assert not pure_task.retries


def test_cli_options_mirror_the_flow_parameters():
    args = vars(build_parser().parse_args([
        "--results-bucket", "b", "--fx-rate", "1.5123", "--target-currency", "EUR", "--http-retries", "2"]))
    assert set(args) == set(inspect.signature(flow_module.top_gainers_elt.fn).parameters)
    assert str(args["fx_rate"]) == "1.5123" and args["http_retries"] == 2 and args["target_currency"] == "EUR"
    assert args["source_url"] == DEFAULT_SOURCE_URL


def test_cli_requires_the_bucket(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    assert "--results-bucket" in capsys.readouterr().err
