"""The battery of bad inputs (issue #15 part 1): realistic mistakes a user makes in an inventory or on `-e`.

Each case is refused by preflight before any AWS or Prefect call (tests/integration/test_bad_input.py runs
site.yml with every endpoint on a dead port) with a message that names the variable, repeats what was given
and says what is allowed; tests/unit/test_bad_inputs_documented.py checks that every variable is a
documented input. Plain data: no imports of the stack helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UUID = "5f0c2a1e-8d3b-4c6a-9e7f-1a2b3c4d5e6f"
CLOUD_URL = f"https://api.prefect.cloud/api/accounts/{UUID}/workspaces/{UUID}"
ZERO = "00000000-0000-0000-0000-000000000000"
CERT = "arn:aws:acm:us-east-1:210987654321:certificate/" + UUID


@dataclass(frozen=True)
class BadInput:
    id: str
    extra_vars: dict
    variable: str             # the documented input the user got wrong (named in the message)
    given: str                # what was given, as the message repeats it
    allowed: str              # a fragment of what the message says is allowed
    hidden: tuple = field(default=())  # values that must NOT appear in the message (credentials)


def flow(**fields) -> dict:
    """A catalogue entry of the shipped package, with the fields given changed."""
    entry = {"name": "fx-watch", "source_dir": "{{ stack_flow_app_dir }}/gainers_elt",
             "entrypoint": "gainers_elt/flow.py:top_gainers_elt", "results_prefix": "fx-watch"}
    entry.update(fields)
    return entry


CASES = [
    # --- network -------------------------------------------------------------------------------
    BadInput("vpc-cidr-not-a-cidr", {"vpc_cidr": "banana"}, "vpc_cidr", "banana", "/16 to /28"),
    BadInput("vpc-cidr-host-bits", {"vpc_cidr": "10.20.0.1/16"}, "vpc_cidr", "10.20.0.1/16", "network address"),
    BadInput("vpc-cidr-too-small", {"vpc_cidr": "10.20.0.0/29"}, "vpc_cidr", "10.20.0.0/29", "/16 to /28"),
    BadInput("vpc-cidr-too-large", {"vpc_cidr": "10.0.0.0/8"}, "vpc_cidr", "10.0.0.0/8", "/16 to /28"),
    BadInput("vpc-cidr-public-range", {"vpc_cidr": "8.8.0.0/16"}, "vpc_cidr", "8.8.0.0/16", "172.16.0.0/12"),
    BadInput("vpc-cidr-no-room-for-subnets", {"vpc_cidr": "10.20.0.0/26"}, "vpc_subnet_newbits", "10.20.0.0/26",
             "/28 or larger"),
    BadInput("subnet-outside-vpc", {"vpc_public_subnet_cidrs": ["10.99.0.0/24", "10.99.1.0/24"]},
             "vpc_public_subnet_cidrs", "10.99.0.0/24", "inside vpc_cidr 10.20.0.0/16"),
    BadInput("subnets-overlap", {"vpc_public_subnet_cidrs": ["10.20.0.0/24", "10.20.0.128/25"]},
             "vpc_public_subnet_cidrs", "10.20.0.0/24 and 10.20.0.128/25", "must not overlap"),
    BadInput("one-availability-zone", {"vpc_azs": ["us-east-1a"]}, "vpc_azs", '["us-east-1a"]', "at least 2"),
    BadInput("zones-of-another-region", {"vpc_azs": ["us-west-2a", "us-west-2b"]}, "vpc_azs", "us-west-2a",
             "availability zones of aws_region us-east-1"),
    BadInput("nat-in-public-layout", {"vpc_layout": "public", "vpc_nat_gateways": "single"}, "vpc_nat_gateways",
             "single", "must be 'none'"),
    BadInput("layout-typo", {"vpc_layout": "privat"}, "vpc_layout", "privat", "private, public"),
    BadInput("alb-cidr-without-prefix", {"alb_allowed_cidrs": ["203.0.113.7"]}, "alb_allowed_cidrs", "203.0.113.7",
             "CIDR notation"),
    BadInput("alb-cidr-prefix-33", {"alb_allowed_cidrs": ["10.0.0.0/33"]}, "alb_allowed_cidrs", "10.0.0.0/33",
             "CIDR notation"),
    # --- region --------------------------------------------------------------------------------
    BadInput("region-missing-dash", {"aws_region": "us-east1"}, "aws_region", "us-east1", "us-east-1"),
    BadInput("region-direction-typo", {"aws_region": "us-est-1"}, "aws_region", "us-est-1", "<area>-<direction>-<number>"),
    BadInput("region-is-a-zone", {"aws_region": "ap-southeast-2a"}, "aws_region", "ap-southeast-2a",
             "not an availability zone"),
    # --- names ---------------------------------------------------------------------------------
    BadInput("project-with-capitals", {"stack_project": "Prefect-ELT"}, "stack_project", "Prefect-ELT-local",
             "lowercase letters"),
    BadInput("project-too-long", {"stack_project": "prefect-elt-data-platform-team"}, "stack_project",
             "prefect-elt-data-platform-team-local", "3-32 characters"),
    BadInput("stack-env-unknown", {"stack_env": "staging"}, "stack_env", "staging", "local, dev, prod"),
    BadInput("bucket-with-capitals", {"s3_buckets_results_name": "Bad_Bucket"}, "s3_buckets_results_name",
             "Bad_Bucket", "3-63 lowercase letters"),
    BadInput("bucket-too-long", {"s3_buckets_results_name": "r" * 64}, "s3_buckets_results_name", "r" * 64,
             "3-63 lowercase letters"),
    BadInput("bucket-like-an-ip", {"s3_buckets_flow_storage_name": "192.168.1.10"}, "s3_buckets_flow_storage_name",
             "192.168.1.10", "not an IP address"),
    BadInput("alb-name-too-long", {"alb_name": "prefect-elt-local-load-balancer-x"}, "alb_name",
             "prefect-elt-local-load-balancer-x", "1-32 letters"),
    BadInput("alb-name-internal-prefix", {"alb_name": "internal-elt"}, "alb_name", "internal-elt",
             "not starting\nwith 'internal-'".replace("\n", " ")),
    BadInput("target-group-underscore", {"alb_target_group_name": "elt_workers"}, "alb_target_group_name",
             "elt_workers", "1-32 letters, digits or hyphens"),
    BadInput("ecr-repository-capitals", {"ecr_image_repository_name": "Prefect/Flow"}, "ecr_image_repository_name",
             "Prefect/Flow", "lowercase letters and digits"),
    # --- Fargate sizes ---------------------------------------------------------------------------
    BadInput("worker-cpu-not-a-size", {"ecs_fargate_agent_cpu": 300, "ecs_fargate_agent_memory": 1024},
             "ecs_fargate_agent_cpu", "300 / 1024", "256 -> 512, 1024, 2048"),
    BadInput("worker-memory-too-big-for-cpu", {"ecs_fargate_agent_cpu": 256, "ecs_fargate_agent_memory": 4096},
             "ecs_fargate_agent_memory", "256 / 4096", "256 -> 512, 1024, 2048"),
    BadInput("flow-run-pair", {"prefect_flow_cpu": 1024, "prefect_flow_memory": 1024}, "prefect_flow_memory",
             "1024 / 1024", "1024 -> 2048-8192"),
    BadInput("catalogue-entry-pair", {"prefect_flows": [flow(cpu=4096, memory=4096)]}, "prefect_flow_catalogue",
             "cpu / memory 4096 / 4096", "4096 -> 8192-30720"),
    # --- counts and ports ----------------------------------------------------------------------
    BadInput("negative-desired-count", {"ecs_fargate_agent_desired_count": -1}, "ecs_fargate_agent_desired_count",
             "-1", "at least 1"),
    BadInput("zero-min-workers", {"prefect_flow_min_workers": 0}, "prefect_flow_min_workers", "0", ">= 1"),
    BadInput("zero-images-kept", {"ecr_image_keep_images": 0}, "ecr_image_keep_images", "0", "between 1 and 10000"),
    BadInput("negative-concurrency-limit", {"prefect_flows": [flow(concurrency_limit=-1)]}, "prefect_flow_catalogue",
             "-1", "integer >= 0"),
    BadInput("health-port-out-of-range", {"stack_worker_health_port": 70000}, "stack_worker_health_port", "70000",
             "1 to 65535"),
    BadInput("health-port-zero", {"ecs_fargate_agent_health_port": 0}, "ecs_fargate_agent_health_port", "0",
             "1-65535"),
    # --- worker autoscaling ---------------------------------------------------------------------
    BadInput("scaling-min-above-max", {"worker_autoscaling_enabled": True, "worker_autoscaling_min_tasks": 5,
                                       "worker_autoscaling_max_tasks": 2},
             "worker_autoscaling_min_tasks", "(5)", "must not be more than worker_autoscaling_max_tasks (2)"),
    BadInput("scaling-negative-min", {"worker_autoscaling_min_tasks": -1}, "worker_autoscaling_min_tasks", "-1",
             "whole number of tasks >= 0"),
    BadInput("scaling-cpu-target-over-100", {"worker_autoscaling_enabled": True, "worker_autoscaling_cpu_target": 150},
             "worker_autoscaling_cpu_target", "150", "from 1 to 100 percent"),
    BadInput("scaling-negative-cooldown", {"worker_autoscaling_scale_in_cooldown": -60},
             "worker_autoscaling_scale_in_cooldown", "-60", "whole seconds >= 0"),
    # --- HTTPS ---------------------------------------------------------------------------------
    BadInput("https-without-certificate", {"alb_listener_https": True}, "alb_certificate_arn", "got )",
             "arn:aws:acm:us-east-1:<account>:certificate/<uuid>"),
    BadInput("https-malformed-certificate",
             {"alb_listener_https": True, "alb_certificate_arn": "arn:aws:acm:us-east-1:210987654321:certificate/nope"},
             "alb_certificate_arn", "certificate/nope", "certificate/<uuid>"),
    BadInput("https-certificate-of-another-region",
             {"alb_listener_https": True, "alb_certificate_arn": CERT.replace("us-east-1", "eu-west-1")},
             "alb_certificate_arn", "eu-west-1", "in its own region"),
    BadInput("https-example-certificate",
             {"alb_listener_https": True, "alb_certificate_arn": f"arn:aws:acm:us-east-1:111122223333:certificate/{ZERO}"},
             "alb_certificate_arn", "111122223333", "not the example one"),
    # --- placeholders and Prefect ----------------------------------------------------------------
    BadInput("cloud-url-placeholder-ids",
             {"prefect_api_url": CLOUD_URL.replace(UUID, ZERO), "prefect_api_key": "pnu_x", "prefect_api_auth_string": ""},
             "prefect_api_url", ZERO, "set your Prefect Cloud account and\nworkspace ids".replace("\n", " ")),
    BadInput("example-secret-account",
             {"ecs_fargate_agent_secret_arn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:prefect-AbCdEf",
              "prefect_api_auth_string": ""},
             "ecs_fargate_agent_secret_arn", "000000000000", "in us-east-1 of your account"),
    BadInput("vault-example-left-in", {"prefect_api_auth_string": "admin:change-me"}, "prefect_api_auth_string",
             "example value of vault.yml.example", "put the\nreal credential".replace("\n", " "),
             hidden=("change-me",)),
    BadInput("cloud-url-over-http",
             {"prefect_api_url": CLOUD_URL.replace("https://", "http://"), "prefect_api_key": "pnu_k3y",
              "prefect_api_auth_string": ""},
             "prefect_api_url", CLOUD_URL.replace("https://", "http://"), "must be https://api.prefect.cloud",
             hidden=("pnu_k3y",)),
    BadInput("cloud-url-with-auth-string", {"prefect_api_url": CLOUD_URL}, "prefect_api_key", CLOUD_URL,
             "needs prefect_api_key", hidden=("not-a-secret",)),
    BadInput("both-credentials", {"prefect_api_key": "pnu_b0th"}, "prefect_api_auth_string", "only one of",
             "prefect_api_key (Prefect Cloud)", hidden=("pnu_b0th", "not-a-secret")),
    BadInput("no-credential", {"prefect_api_auth_string": ""}, "prefect_api_auth_string", "Set prefect_api_key",
             "ecs_fargate_agent_secret_arn"),
    BadInput("auth-string-without-colon", {"prefect_api_auth_string": "adminS3cret"}, "prefect_api_auth_string",
             "has no colon", "user:password", hidden=("adminS3cret",)),
    BadInput("api-url-without-scheme", {"prefect_api_url": "127.0.0.1:4200/api"}, "prefect_api_url",
             "127.0.0.1:4200/api", "http(s)://"),
    BadInput("self-hosted-url-without-api", {"prefect_api_url": "http://prefect.internal:4200"}, "prefect_api_url",
             "http://prefect.internal:4200", "ending in /api"),
    # --- schedules, currency -------------------------------------------------------------------
    BadInput("cron-four-fields", {"prefect_flows": [flow(schedules=[{"cron": "0 6 * *"}])]}, "prefect_flow_catalogue",
             "0 6 * *", "5-field cron"),
    BadInput("cron-minute-61", {"prefect_flows": [flow(schedules=[{"cron": "61 6 * * *"}])]}, "prefect_flow_catalogue",
             "61 6 * * *", "0-59"),
    BadInput("cron-day-of-week-8", {"prefect_flows": [flow(schedules=[{"cron": "0 6 * * 8"}])]}, "prefect_flow_catalogue",
             "0 6 * * 8", "0-7 or SUN-SAT"),
    BadInput("timezone-typo", {"prefect_flows": [flow(schedules=[{"cron": "0 6 * * *", "timezone": "Australia/Sydny"}])]},
             "prefect_flow_catalogue", "Australia/Sydny", "IANA timezone"),
    BadInput("timezone-abbreviation", {"prefect_flows": [flow(schedules=[{"cron": "0 6 * * *", "timezone": "AEST"}])]},
             "prefect_flow_catalogue", "AEST", "IANA timezone"),
    BadInput("interval-zero", {"prefect_flows": [flow(schedules=[{"interval": 0}])]}, "prefect_flow_catalogue", "0",
             "seconds > 0"),
    BadInput("currency-lowercase", {"stack_flow_target_currency": "aud"}, "stack_flow_target_currency", "aud",
             "ISO 4217"),
    BadInput("currency-four-letters", {"stack_flow_target_currency": "AUDD"}, "stack_flow_target_currency", "AUDD",
             "3 capital letters"),
    # --- logs and lifecycle --------------------------------------------------------------------
    BadInput("log-retention-45", {"ecs_fargate_agent_log_retention_days": 45}, "ecs_fargate_agent_log_retention_days",
             "45", "1, 3, 5, 7, 14, 30, 60"),
    BadInput("flow-log-retention-100", {"vpc_flow_logs_retention_days": 100}, "vpc_flow_logs_retention_days", "100",
             "90, 120"),
    BadInput("ia-transition-before-30-days", {"s3_buckets_results_transition_days": 10},
             "s3_buckets_results_transition_days", "10", "at least 30"),
    BadInput("expiration-not-after-transition",
             {"s3_buckets_results_transition_days": 30, "s3_buckets_results_expiration_days": 30},
             "s3_buckets_results_expiration_days", "got 30 / 30", "expiration after transition"),
    BadInput("noncurrent-expiration-zero", {"s3_buckets_noncurrent_version_expiration_days": 0},
             "s3_buckets_noncurrent_version_expiration_days", "got 0", "at least 1"),
    BadInput("encryption-typo", {"s3_buckets_encryption": "rot13"}, "s3_buckets_encryption", "rot13", "AES256, aws:kms"),
    BadInput("kms-alias-not-arn", {"s3_buckets_encryption": "aws:kms", "s3_buckets_kms_key_id": "alias/results"},
             "s3_buckets_kms_key_id", "alias/results", "key ARN"),
    # --- tags ----------------------------------------------------------------------------------
    BadInput("reserved-aws-tag", {"stack_extra_tags": {"aws:owner": "data"}}, "stack_extra_tags", "aws:owner",
             "AWS reserves"),
    BadInput("tag-value-257", {"stack_extra_tags": {"Team": "t" * 257}}, "stack_extra_tags", "257",
             "at most 256 characters"),
    BadInput("tag-key-129", {"stack_extra_tags": {"k" * 129: "v"}}, "stack_extra_tags", "k" * 100,
             "1-128 characters"),
    BadInput("tag-key-bad-character", {"stack_extra_tags": {"Cost Center!": "42"}}, "stack_extra_tags",
             "Cost Center!", "_ . : / = + - @"),
    # --- Prefect names and the catalogue ---------------------------------------------------------
    BadInput("pool-name-reserved", {"prefect_flow_work_pool_name": "prefect-pool", "ecs_fargate_agent_work_pool_name":
                                    "prefect-pool"}, "prefect_flow_work_pool_name", "prefect-pool", "not start with 'prefect'"),
    BadInput("pool-name-slash", {"ecs_fargate_agent_work_pool_name": "elt/ecs", "prefect_flow_work_pool_name": "elt/ecs"},
             "ecs_fargate_agent_work_pool_name", "elt/ecs", "without / % & < >"),
    BadInput("pools-differ", {"ecs_fargate_agent_work_pool_name": "elt-ecs"}, "prefect_flow_work_pool_name",
             "elt-local-ecs", "must be the same pool"),
    BadInput("deployment-name-slash", {"prefect_flows": [flow(deployment_name="daily/v2")]}, "prefect_flow_catalogue",
             "daily/v2", "must not contain /"),
    BadInput("catalogue-unknown-key", {"prefect_flows": [flow(schedule=[{"cron": "0 6 * * *"}])]}, "prefect_flow_catalogue",
             "unknown field(s) schedule", "allowed: name, flow_name"),
    BadInput("catalogue-duplicate-names", {"prefect_flows": [flow(), flow(results_prefix="other")]}, "prefect_flow_catalogue",
             "name 'fx-watch' duplicates", "prefect_flow_catalogue[0]"),
    BadInput("catalogue-name-capitals", {"prefect_flows": [flow(name="FX Watch")]}, "prefect_flow_catalogue", "FX Watch",
             "1-24 lowercase letters"),
    BadInput("catalogue-entrypoint-no-function", {"prefect_flows": [flow(entrypoint="gainers_elt/flow.py")]},
             "prefect_flow_catalogue", "gainers_elt/flow.py", "<package>/<file.py>:<function>"),
    BadInput("image-uri-without-tag", {"ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flow"},
             "ecr_image_uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/flow", "explicit tag or digest"),
    BadInput("builder-unknown", {"ecr_image_builder": "kaniko"}, "ecr_image_builder", "kaniko", "podman"),
    # --- the Prefect server mode and the self-hosted server (issue #16) ------------------------------
    BadInput("server-mode-typo", {"prefect_server_mode": "selfhosted"}, "prefect_server_mode", "selfhosted",
             "cloud (Prefect Cloud), external"),
    BadInput("hosted-with-cloud-key", {"prefect_server_mode": "hosted", "prefect_api_key": "pnu_h0sted", "prefect_api_auth_string": ""},
             "prefect_api_key", "prefect_server_mode is hosted", "must be empty", hidden=("pnu_h0sted",)),
    BadInput("hosted-without-auth-string", {"prefect_server_mode": "hosted", "prefect_api_auth_string": ""},
             "prefect_api_auth_string", "prefect_server_mode is hosted", '"user:password"'),
    BadInput("external-without-url", {"prefect_server_mode": "external", "prefect_api_url": ""}, "prefect_api_url",
             "got nothing", "your server's API URL"),
    BadInput("cloud-mode-self-hosted-url", {"prefect_server_mode": "cloud", "prefect_api_url": "https://prefect.example.com/api"},
             "prefect_server_mode", "https://prefect.example.com/api", "Prefect Cloud workspace URL", hidden=("not-a-secret",)),
    BadInput("public-url-with-api", {"prefect_server_mode": "hosted", "prefect_server_public_url": "https://prefect.example.com/api"},
             "prefect_server_public_url", "https://prefect.example.com/api", "without /api"),
    BadInput("public-url-not-hosted", {"prefect_server_public_url": "https://prefect.example.com"}, "prefect_server_public_url",
             "https://prefect.example.com", "set prefect_server_mode hosted"),
    BadInput("server-backups-off", {"prefect_server_mode": "hosted", "prefect_server_db_backup_retention_days": 0},
             "prefect_server_db_backup_retention_days", "got 0", "1-35 days"),
    BadInput("server-db-identifier-underscore", {"prefect_server_mode": "hosted", "prefect_server_db_identifier": "prefect_db"},
             "prefect_server_db_identifier", "prefect_db", "single hyphens"),
    BadInput("server-db-user-reserved", {"prefect_server_mode": "hosted", "prefect_server_db_username": "postgres"},
             "prefect_server_db_username", "got postgres", "rdsadmin"),
    BadInput("server-env-carries-password", {"prefect_server_mode": "hosted", "prefect_server_extra_env": {"DB_PASSWORD": "x"}},
             "prefect_server_extra_env", "DB_PASSWORD", "Secrets Manager"),
    # --- the task roles of flow runs (issue #17) -------------------------------------------------
    # "/" would let the worker pass every role of the account, and prune every role not in the catalogue.
    BadInput("flow-task-role-path-root", {"prefect_flow_task_role_path": "/"}, "prefect_flow_task_role_path", "got '/'",
             "IAM path below /"),
    BadInput("default-task-role-and-arn", {"prefect_flow_task_role_arn": "arn:aws:iam::210987654321:role/mine"},
             "prefect_flow_task_role_arn", "arn:aws:iam::210987654321:role/mine", "not both"),
]
