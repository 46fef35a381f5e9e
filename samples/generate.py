#!/usr/bin/env python3
"""Write the sample CloudTrail dataset: one day of a small organisation, as its trails deliver it.

Two accounts (123456789012 "prod", 444455556666 "analytics") in two regions: management events,
S3 data events, and VPC endpoint network activity events (S3, KMS, Secrets Manager, EC2), mostly
from private VPC addresses, with a handful of planted incidents for the VPC endpoint family of rules
(see INCIDENTS). Records follow the shapes in network-activity-events.md: network activity records
carry no userAgent, requestParameters, responseElements, resources, readOnly or managementEvent,
and callers from another account appear redacted as {"type": "AWSAccount", ...}.

Everything comes from seeded generators, in a fixed order, and the gzip headers carry no time or
name, so the same arguments always write byte-identical files:

    python samples/generate.py                        # rewrite samples/cloudtrail/
    python samples/generate.py --out DIR --days 10    # ten days of traffic (benchmarks)

Stdlib only, so it runs before anything is installed.
"""

import argparse
import datetime as dt
import gzip
import io
import json
import random
import string
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

SEED = 20261120
FIRST_DAY = dt.date(2026, 11, 20)
DEFAULT_OUT = Path(__file__).resolve().parent / "cloudtrail"
# Trails publish a file per account and region about every five minutes; the sample batches
# fifteen minutes per file, which keeps the checked-in dataset under a megabyte.
DELIVERY_MINUTES = 15

PROD = "123456789012"
ANALYTICS = "444455556666"
OUTSIDER = "777788889999"  # not in the organisation
PARTNER = "210987654321"  # a vendor's account, not in the organisation
US = "us-east-1"
EU = "eu-west-1"

DENIED_CODE = "VpceAccessDenied"
DENIED_MESSAGE = "The request was denied due to a VPC endpoint policy"

# Addresses callers are seen from. Public ones are real public space, never the documentation
# ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), which are not public.
OFFICE_EGRESS = "81.2.69.142"  # the organisation's office NAT
PROD_NAT_GATEWAY = "3.213.54.180"  # prod VPC's NAT gateway, for calls to public AWS endpoints
# The prod us-east-1 VPC is dual-stack: Amazon gave it this public IPv6 block.
DUAL_STACK_IPV6_BLOCK = "2600:1f18:7c2e:4b00::/56"


@dataclass(frozen=True)
class Caller:
    """Who signs a call. kind is userIdentity.type."""

    kind: str
    account: str
    name: str  # role name, user name, or the invoking service
    unique_id: str = ""  # AROA... / AIDA...
    session: str = ""  # role session name
    access_key: str = ""


CALLERS = {
    caller_key: Caller(*fields)
    for caller_key, fields in {
        # prod workloads
        "etl": ("AssumedRole", PROD, "DataPipeline", "AROAEXAMPLEDATAPIPE01", "etl-nightly",
                "ASIAEXAMPLEETLNIGHT01"),
        "etl_v6_a": ("AssumedRole", PROD, "DataPipeline", "AROAEXAMPLEDATAPIPE01",
                     "i-0d5b7e2c9a41f3806", "ASIAEXAMPLEETLV6HSTA1"),
        "etl_v6_b": ("AssumedRole", PROD, "DataPipeline", "AROAEXAMPLEDATAPIPE01",
                     "i-07c1e94b2f60d8a35", "ASIAEXAMPLEETLV6HSTB1"),
        "reporting": ("AssumedRole", PROD, "ReportingService", "AROAEXAMPLEREPORTSV02",
                      "9f1c2b7e4a6d4c0e8b35a7d2e1f06c94", "ASIAEXAMPLEREPORTTSK1"),
        "reporting_batch": ("AssumedRole", PROD, "ReportingBatch", "AROAEXAMPLERPTBATCH03",
                            "i-0f3c2a9e5b7d41a86", "ASIAEXAMPLERPTBATCH01"),
        "log_shipper": ("AssumedRole", PROD, "LogShipper", "AROAEXAMPLELOGSHIPP04",
                        "i-0a7e31c5d2b94f610", "ASIAEXAMPLELOGSHIPP01"),
        "legacy_batch": ("AssumedRole", PROD, "LegacyBatch", "AROAEXAMPLELEGACYBT05",
                         "i-03b8d6f1e7a2c4905", "ASIAEXAMPLELEGACYBT01"),
        "monitoring": ("AssumedRole", PROD, "MonitoringReadOnly", "AROAEXAMPLEMONITORR06",
                       "prometheus-exporter", "ASIAEXAMPLEMONITORR01"),
        "eu_api": ("AssumedRole", PROD, "OrdersApiEu", "AROAEXAMPLEORDERSEU07",
                   "5e8a0c3d7b1f4e2a9c6d8b0f3a5e7c19", "ASIAEXAMPLEORDERSEU01"),
        "prod_admin": ("AssumedRole", PROD, "AWSReservedSSO_AdministratorAccess_5c0a8d2e9b17f364",
                       "AROAEXAMPLESSOADMIN08", "alice@example.com", "ASIAEXAMPLEALICEADM01"),
        "backup_sync": ("IAMUser", PROD, "backup-sync", "AIDAEXAMPLEBACKUPSY09", "",
                        "AKIAEXAMPLEBACKUPSY09"),
        "ci_deploy": ("AssumedRole", PROD, "CIDeploy", "AROAEXAMPLECIDEPLOY17", "build-8213",
                      "ASIAEXAMPLECIDEPLOY01"),
        "ec2_service": ("AWSService", PROD, "ec2.amazonaws.com"),
        "ecs_service": ("AWSService", PROD, "ecs-tasks.amazonaws.com"),
        # analytics workloads and people
        "exporter": ("AssumedRole", ANALYTICS, "AnalyticsExporter", "AROAEXAMPLEEXPORTER10",
                     "export-daily", "ASIAEXAMPLEEXPORTER01"),
        "notebook": ("AssumedRole", ANALYTICS, "SageMakerNotebook", "AROAEXAMPLENOTEBOOK11",
                     "SageMaker", "ASIAEXAMPLENOTEBOOK01"),
        "notebook_eu": ("AssumedRole", ANALYTICS, "SageMakerNotebookEu", "AROAEXAMPLENOTEBKEU12",
                        "SageMaker", "ASIAEXAMPLENOTEBKEU01"),
        "analyst": ("AssumedRole", ANALYTICS, "AWSReservedSSO_DataAnalyst_1b6f0e9c4d2a7358",
                    "AROAEXAMPLESSOANALY13", "bob@example.com", "ASIAEXAMPLEBOBANALY01"),
        "contractor": ("IAMUser", ANALYTICS, "j.rivera", "AIDAEXAMPLEJRIVERA14", "",
                       "AKIAEXAMPLEJRIVERA14"),
        "analytics_ec2_service": ("AWSService", ANALYTICS, "ec2.amazonaws.com"),
        # outside the organisation: only ever seen redacted
        "outsider": ("IAMUser", OUTSIDER, "unknown", "AIDAEXAMPLEOUTSIDR15", "",
                     "AKIAEXAMPLEOUTSIDR15"),
        "vendor": ("IAMUser", PARTNER, "vendor-sync", "AIDAEXAMPLEVENDORSY16", "",
                   "AKIAEXAMPLEVENDORSY16"),
    }.items()
}  # fmt: skip

ENDPOINTS = {
    (PROD, US, "s3"): "vpce-0c4d1f29a7be5310e",
    (PROD, US, "kms"): "vpce-07a2e6b1d9c3f4851",
    (PROD, US, "secretsmanager"): "vpce-0e93b5c7a1d2f6084",
    (PROD, US, "ec2"): "vpce-0a6c8e2f4b1d39570",
    (PROD, EU, "s3"): "vpce-0b8f2d6e4c1a3957d",
    (PROD, EU, "kms"): "vpce-05d1c7e9a3b6f2480",
    (PROD, EU, "secretsmanager"): "vpce-09a4e2c6b8d1f3575",
    (ANALYTICS, US, "s3"): "vpce-0f2a6c8e1b3d5a797",
    (ANALYTICS, US, "kms"): "vpce-01c3e5a7b9d2f4608",
    (ANALYTICS, EU, "s3"): "vpce-0d7b9f1a3c5e2b846",
}


@dataclass(frozen=True)
class Bucket:
    owner: str
    region: str
    data_events: bool  # whether the owner's trail logs S3 data events for it
    key_pattern: str  # fields: date, date_path, hour, n, hex


BUCKETS = {
    "acme-datalake-prod": Bucket(PROD, US, False, "curated/orders/dt={date}/part-{n:05d}.parquet"),
    "acme-app-logs-prod": Bucket(PROD, US, False, "app/{date_path}/{hour}/events-{hex}.json.gz"),
    "acme-finance-reports": Bucket(PROD, US, True, "reports/{date}/revenue-{n:03d}.csv"),
    "acme-orders-eu": Bucket(PROD, EU, False, "orders/{date_path}/{hex}.json"),
    "acme-analytics-scratch": Bucket(ANALYTICS, US, True, "notebooks/{date}/{hex}.parquet"),
    "acme-analytics-eu": Bucket(ANALYTICS, EU, False, "exports/{date}/{hex}.csv"),
}

USER_AGENTS = {
    "boto3": "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.1.112-122.189.amzn2023.x86_64 "
    "md/arch#x86_64 lang/python#3.11.10 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.36",
    "java": "[aws-sdk-java/2.28.16 Linux/6.1.112-122.189.amzn2023.x86_64 "
    "OpenJDK_64-Bit_Server_VM/21.0.5+11-LTS Java/21.0.5 vendor/Amazon.com_Inc. md/internal "
    "exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode/legacy]",
    "go": "aws-sdk-go-v2/1.32.2 ua/2.1 os/linux lang/go#1.23.2 md/GOOS#linux md/GOARCH#amd64 "
    "api/s3#1.66.0",
    "cli": "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/macos#23.6.0 md/arch#arm64 "
    "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source "
    "md/prompt#off",
    "console": "AWS Internal",
    "browser": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "ec2": "ec2.amazonaws.com",
    "ecs": "ecs-tasks.amazonaws.com",
}

# Relative call volume by UTC hour: (first hour, last hour, weight) over a baseline of 1.
HOUR_PROFILES = {
    "flat": (),
    "business_us": ((13, 22, 8),),
    "business_eu": ((7, 16, 8),),
    "nightly": ((1, 3, 30),),
}


@dataclass(frozen=True)
class Workload:
    """Steady calls through a VPC endpoint, all from private addresses."""

    caller: str
    endpoint_owner: str
    region: str
    service: str
    per_day: int
    hours: str
    sources: tuple
    operations: tuple  # (eventName, weight)
    bucket: str = ""  # S3 only
    user_agent: str = "boto3"
    denied: bool = False


S3_READS = (("GetObject", 70), ("HeadObject", 20), ("ListObjects", 10))
S3_READ_WRITE = (("GetObject", 50), ("PutObject", 35), ("HeadObject", 10), ("ListObjects", 5))

WORKLOADS = (
    Workload("etl", PROD, US, "s3", 1100, "nightly", ("10.0.141.54", "10.0.142.17", "10.0.143.201"),
             S3_READ_WRITE, "acme-datalake-prod", "java"),
    Workload("reporting", PROD, US, "s3", 420, "business_us", ("10.0.12.33", "10.0.13.90"),
             S3_READS, "acme-finance-reports", "java"),
    Workload("log_shipper", PROD, US, "s3", 600, "flat", ("10.0.64.18", "10.0.65.122"),
             (("PutObject", 1),), "acme-app-logs-prod", "go"),
    # A cross-account job on a shared host in the prod VPC: redacted identity, private address.
    Workload("exporter", PROD, US, "s3", 260, "nightly", ("10.0.77.12",),
             (("GetObject", 90), ("ListObjects", 10)), "acme-datalake-prod"),
    # A job the endpoint policy forgot: denied all day, but from inside the VPC.
    Workload("legacy_batch", PROD, US, "s3", 48, "flat", ("10.0.201.9",),
             (("PutObject", 1),), "acme-datalake-prod", denied=True),
    Workload("eu_api", PROD, EU, "s3", 360, "business_eu", ("10.1.20.11", "10.1.21.45"),
             (("GetObject", 70), ("PutObject", 30)), "acme-orders-eu", "java"),
    Workload("notebook", ANALYTICS, US, "s3", 300, "business_us", ("10.20.5.14", "10.20.5.77"),
             (("GetObject", 60), ("PutObject", 25), ("ListObjects", 15)),
             "acme-analytics-scratch"),
    Workload("notebook_eu", ANALYTICS, EU, "s3", 120, "business_eu", ("10.21.3.8",),
             (("GetObject", 60), ("PutObject", 40)), "acme-analytics-eu"),
    Workload("etl", PROD, US, "kms", 260, "nightly", ("10.0.141.54", "10.0.142.17"),
             (("GenerateDataKey", 60), ("Decrypt", 40)), user_agent="java"),
    Workload("reporting", PROD, US, "kms", 110, "business_us", ("10.0.12.33", "10.0.13.90"),
             (("Decrypt", 1),), user_agent="java"),
    Workload("reporting", PROD, US, "secretsmanager", 48, "flat", ("10.0.12.33", "10.0.13.90"),
             (("GetSecretValue", 1),), user_agent="java"),
    Workload("eu_api", PROD, EU, "kms", 90, "business_eu", ("10.1.20.11", "10.1.21.45"),
             (("Decrypt", 1),), user_agent="java"),
    Workload("eu_api", PROD, EU, "secretsmanager", 24, "flat", ("10.1.20.11",),
             (("GetSecretValue", 1),), user_agent="java"),
    Workload("notebook", ANALYTICS, US, "kms", 60, "business_us", ("10.20.5.14",),
             (("Decrypt", 1),)),
    # Monitoring polls EC2 through its interface endpoint.
    Workload("monitoring", PROD, US, "ec2", 144, "flat", ("10.0.30.5",),
             (("DescribeInstances", 3), ("DescribeNetworkInterfaces", 1))),
)  # fmt: skip


@dataclass(frozen=True)
class ManagementActivity:
    """Control-plane calls, recorded in the caller's own account."""

    caller: str
    region: str
    service: str
    name: str
    per_day: int
    hours: str
    source: str
    user_agent: str
    read_only: bool = True


MANAGEMENT = (
    # Instance profiles and ECS task roles refresh their credentials.
    ManagementActivity("ec2_service", US, "sts", "AssumeRole", 120, "flat", "ec2.amazonaws.com",
                       "ec2", read_only=False),
    ManagementActivity("ecs_service", US, "sts", "AssumeRole", 48, "flat",
                       "ecs-tasks.amazonaws.com", "ecs", read_only=False),
    ManagementActivity("analytics_ec2_service", US, "sts", "AssumeRole", 48, "flat",
                       "ec2.amazonaws.com", "ec2", read_only=False),
    # Monitoring polls both regions.
    ManagementActivity("monitoring", US, "ec2", "DescribeInstances", 144, "flat", "10.0.30.5",
                       "boto3"),
    ManagementActivity("monitoring", US, "monitoring", "GetMetricData", 144, "flat", "10.0.30.5",
                       "boto3"),
    ManagementActivity("monitoring", EU, "ec2", "DescribeInstances", 144, "flat",
                       PROD_NAT_GATEWAY, "boto3"),
    # Workloads' own control-plane calls.
    ManagementActivity("eu_api", EU, "ssm", "GetParameters", 48, "flat", "10.1.20.11", "java"),
    ManagementActivity("reporting", US, "secretsmanager", "GetSecretValue", 48, "flat",
                       "10.0.12.33", "java"),
    ManagementActivity("etl", US, "glue", "GetTable", 90, "nightly", "10.0.141.54", "java"),
    ManagementActivity("log_shipper", US, "logs", "CreateLogStream", 24, "flat", "10.0.64.18",
                       "go", read_only=False),
    # People at the office.
    ManagementActivity("prod_admin", US, "ec2", "DescribeInstances", 40, "business_eu",
                       OFFICE_EGRESS, "console"),
    ManagementActivity("prod_admin", US, "ec2", "DescribeSecurityGroups", 25, "business_eu",
                       OFFICE_EGRESS, "console"),
    ManagementActivity("prod_admin", US, "iam", "GetRole", 20, "business_eu", OFFICE_EGRESS,
                       "console"),
    ManagementActivity("prod_admin", US, "s3", "GetBucketPolicy", 15, "business_eu",
                       OFFICE_EGRESS, "console"),
    ManagementActivity("prod_admin", EU, "ec2", "DescribeInstances", 20, "business_eu",
                       OFFICE_EGRESS, "console"),
    ManagementActivity("analyst", US, "athena", "StartQueryExecution", 60, "business_us",
                       OFFICE_EGRESS, "console", read_only=False),
    ManagementActivity("analyst", US, "athena", "GetQueryExecution", 120, "business_us",
                       OFFICE_EGRESS, "console"),
    ManagementActivity("analyst", US, "glue", "GetTables", 30, "business_us", OFFICE_EGRESS,
                       "console"),
    ManagementActivity("analyst", EU, "s3", "ListBuckets", 10, "business_eu", OFFICE_EGRESS,
                       "console"),
)  # fmt: skip

# Sign-ins: (caller, UTC time). The console's first call of the day.
CONSOLE_SIGN_INS = (("prod_admin", "07:58:12"), ("analyst", "13:02:47"), ("analyst", "18:31:05"))

# Objects people upload through the console from the office: S3 data events from a public
# address that did not come through an endpoint (not network activity: no alert).
CONSOLE_UPLOADS = (("prod_admin", "acme-finance-reports", 12, "business_eu"),)


@dataclass(frozen=True)
class Incident:
    """A planted story. steps: (seconds after start, service, eventName, denied)."""

    label: str
    caller: str
    endpoint_owner: str
    region: str
    source: str
    start: str  # HH:MM:SS on the first day
    steps: tuple
    bucket: str = ""  # for the S3 data events the bucket's own trail logs
    user_agent: str = "cli"


def _reads(*offsets, name="GetObject", service="s3", denied=False):
    return tuple((offset, service, name, denied) for offset in offsets)


INCIDENTS = (
    # (a) Stolen instance-role credentials used from a VPS: list, then read reports for ~20 min.
    Incident("outside reader", "reporting_batch", PROD, US, "198.199.88.17", "03:12:07",
             _reads(0, name="ListObjects") + _reads(9, name="HeadObject")
             + _reads(21, 140, 301, 488, 655, 842, 1010, 1173), "acme-finance-reports"),
    # (b) Someone outside the organisation probes the EU endpoint; the policy denies everything.
    Incident("denied probe", "outsider", PROD, EU, "45.33.32.156", "07:44:31",
             _reads(0, 4, name="ListObjects", denied=True) + _reads(7, 12, 30, denied=True)
             + _reads(41, name="PutObject", denied=True)
             + _reads(55, service="kms", name="ListKeys", denied=True)),
    # (c) A contractor's key from the analytics account, used from outside, through prod's
    #     endpoint: the record shows only the redacted cross-account identity.
    Incident("cross-account caller", "contractor", PROD, US, "9.9.9.9", "13:05:52",
             _reads(0, 38, 95) + _reads(160, name="PutObject")),
    # (d) A long-lived backup key deletes objects from outside.
    Incident("outside delete", "backup_sync", PROD, US, "185.199.108.153", "19:20:14",
             _reads(0) + _reads(33, 34, 36, name="DeleteObject")),
    # (e) Two instances in the dual-stack VPC reach the endpoint over IPv6: Amazon-provided,
    #     public addresses, but the organisation's own. A TRUSTED_NETWORKS entry silences them.
    Incident("dual-stack IPv6 host", "etl_v6_a", PROD, US, "2600:1f18:7c2e:4b17:9d3a:5e1:c08f:2b64",
             "02:03:40", _reads(0, 62, 130, 244, 301) + _reads(75, 190, 320, name="PutObject"),
             user_agent="java"),
    Incident("dual-stack IPv6 host", "etl_v6_b", PROD, US, "2600:1f18:7c2e:4b42:61c7:e0b:7f15:a93d",
             "02:04:02", _reads(0, 95, 211) + _reads(140, name="PutObject"), user_agent="java"),
    # (f) Bulk exfiltration: the exporter's leaked keys copy 300 objects out of the analytics
    #     scratch bucket from a commercial VPN address in under five minutes.
    Incident("bulk exfiltration", "exporter", ANALYTICS, US, "146.70.117.35", "22:41:05",
             _reads(*(n * 7 // 8 for n in range(300))), "acme-analytics-scratch",
             user_agent="boto3"),
    # (g) A vendor's key, on a host of theirs in prod's shared VPC, reads prod's secrets.
    Incident("foreign principal", "vendor", PROD, US, "10.0.77.40", "11:26:09",
             _reads(0, 4, 9, service="secretsmanager", name="GetSecretValue")),
    # (h) Someone on a prod ETL host disables the data lake's key, then schedules its deletion.
    Incident("key destruction", "etl", PROD, US, "10.0.142.17", "16:40:12",
             _reads(0, service="kms", name="DisableKey")
             + _reads(21, service="kms", name="ScheduleKeyDeletion"), user_agent="java"),
    # (i) The CI deploy role's keys, on a compromised build host inside prod's VPC, list prod's
    #     secrets and read 64 of them in four minutes: every read routine on its own.
    Incident("secrets collection", "ci_deploy", PROD, US, "10.0.90.23", "21:17:40",
             _reads(0, service="secretsmanager", name="ListSecrets")
             + _reads(*(3 + n * 15 // 4 for n in range(64)), service="secretsmanager",
                      name="GetSecretValue"), user_agent="boto3"),
)  # fmt: skip

HEX = "0123456789abcdef"
REQUEST_ID_ALPHABET = string.ascii_uppercase + string.digits
FILE_SUFFIX_ALPHABET = string.ascii_letters + string.digits


# --- small builders -------------------------------------------------------------------------------


def new_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def token(rng, length, alphabet=REQUEST_ID_ALPHABET):
    return "".join(rng.choices(alphabet, k=length))


def stamp(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_id(rng, service):
    # S3 request ids are 16 characters; other services use UUIDs.
    return token(rng, 16) if service == "s3" else new_uuid(rng)


def at(day, clock):
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return dt.datetime(day.year, day.month, day.day, hours, minutes, seconds, tzinfo=dt.UTC)


def hour_weights(profile):
    weights = [1] * 24
    for first, last, weight in HOUR_PROFILES[profile]:
        for hour in range(first, last + 1):
            weights[hour] = weight
    return weights


def times_of_day(rng, day, count, profile):
    """count instants on day, spread by the profile's hourly weights, in time order."""
    start = at(day, "00:00:00")
    hours = rng.choices(range(24), weights=hour_weights(profile), k=count)
    return sorted(start + dt.timedelta(hours=hour, seconds=rng.randrange(3600)) for hour in hours)


def weighted(rng, pairs):
    names, weights = zip(*pairs, strict=True)
    return rng.choices(names, weights=weights)[0]


def object_key(rng, bucket, when):
    return BUCKETS[bucket].key_pattern.format(
        date=when.strftime("%Y-%m-%d"),
        date_path=when.strftime("%Y/%m/%d"),
        hour=when.strftime("%H"),
        n=rng.randrange(1000),
        hex=token(rng, 12, HEX),
    )


# --- identities -----------------------------------------------------------------------------------


def session_identity(caller, when):
    issued = when.replace(minute=0, second=0) - dt.timedelta(minutes=5)
    return {
        "type": "AssumedRole",
        "principalId": f"{caller.unique_id}:{caller.session}",
        "arn": f"arn:aws:sts::{caller.account}:assumed-role/{caller.name}/{caller.session}",
        "accountId": caller.account,
        "accessKeyId": caller.access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": caller.unique_id,
                "arn": f"arn:aws:iam::{caller.account}:role/{caller.name}",
                "accountId": caller.account,
                "userName": caller.name,
            },
            "attributes": {"creationDate": stamp(issued), "mfaAuthenticated": "false"},
        },
    }


def user_identity(caller, _when):
    return {
        "type": "IAMUser",
        "principalId": caller.unique_id,
        "arn": f"arn:aws:iam::{caller.account}:user/{caller.name}",
        "accountId": caller.account,
        "accessKeyId": caller.access_key,
        "userName": caller.name,
    }


def service_identity(caller, _when):
    return {"type": "AWSService", "invokedBy": caller.name}


IDENTITY_BUILDERS = {
    "AssumedRole": session_identity,
    "IAMUser": user_identity,
    "AWSService": service_identity,
}


def identity(caller, recipient, when):
    """userIdentity as the recipient's trail shows it: callers from elsewhere are redacted."""
    if caller.kind != "AWSService" and caller.account != recipient:
        return {"type": "AWSAccount", "principalId": caller.access_key, "accountId": caller.account}
    return IDENTITY_BUILDERS[caller.kind](caller, when)


# --- records --------------------------------------------------------------------------------------


def network_activity(rng, when, *, caller, owner, region, service, name, source, denied=False):
    """An AwsVpceEvent as the endpoint owner's trail records it (key order as AWS writes it)."""
    record = {
        "eventVersion": "1.10",
        "userIdentity": identity(caller, owner, when),
        "eventTime": stamp(when),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": source,
    }
    if denied:
        record["errorCode"] = DENIED_CODE
        record["errorMessage"] = DENIED_MESSAGE
    record.update(
        requestID=request_id(rng, service),
        eventID=new_uuid(rng),
        eventType="AwsVpceEvent",
        recipientAccountId=owner,
        sharedEventID=new_uuid(rng),
        vpcEndpointId=ENDPOINTS[(owner, region, service)],
        vpcEndpointAccountId=owner,
        eventCategory="NetworkActivity",
    )
    return record


S3_READ_ONLY = {"GetObject": True, "HeadObject": True, "ListObjects": True}
BYTES_OUT = {"GetObject": (2_000, 4_000_000), "HeadObject": (0, 0), "ListObjects": (600, 9_000)}


def s3_request(name, bucket, key, host):
    if name == "ListObjects":
        return {
            "bucketName": bucket,
            "Host": host,
            "list-type": "2",
            "prefix": key.rsplit("/", 1)[0],
        }
    return {"bucketName": bucket, "Host": host, "key": key}


def s3_data_event(rng, when, *, caller, bucket, name, source, user_agent, endpoint=None):
    """An S3 object-level data event as the bucket owner's trail records it."""
    owner, region = BUCKETS[bucket].owner, BUCKETS[bucket].region
    key = object_key(rng, bucket, when)
    host = f"{bucket}.s3.{region}.amazonaws.com"
    low, high = BYTES_OUT.get(name, (0, 0))
    read_only = S3_READ_ONLY.get(name, False)
    record = {
        "eventVersion": "1.10",
        "userIdentity": identity(caller, owner, when),
        "eventTime": stamp(when),
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": source,
        "userAgent": USER_AGENTS[user_agent],
        "requestParameters": s3_request(name, bucket, key, host),
        "responseElements": None if read_only else {"x-amz-server-side-encryption": "aws:kms"},
        "additionalEventData": {
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": 0 if read_only else rng.randrange(500, 2_000_000),
            "AuthenticationMethod": "AuthHeader",
            "bytesTransferredOut": rng.randint(low, high),
        },
        "requestID": token(rng, 16),
        "eventID": new_uuid(rng),
        "readOnly": read_only,
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": owner, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": owner,
    }
    if endpoint is not None:
        record["vpcEndpointId"] = endpoint
        record["vpcEndpointAccountId"] = owner
    record["eventCategory"] = "Data"
    record["tlsDetails"] = {
        "tlsVersion": "TLSv1.3",
        "cipherSuite": "TLS_AES_128_GCM_SHA256",
        "clientProvidedHostHeader": host,
    }
    return record


def assume_role(rng, caller, when):
    """requestParameters and responseElements of an instance profile's credential refresh."""
    role = rng.choice(("DataPipeline", "ReportingService", "LogShipper", "LegacyBatch"))
    session = f"i-0{token(rng, 16, HEX)}"
    request = {
        "roleArn": f"arn:aws:iam::{caller.account}:role/{role}",
        "roleSessionName": session,
        "durationSeconds": 3600,
    }
    response = {
        "credentials": {
            "accessKeyId": f"ASIA{token(rng, 16)}",
            "expiration": stamp(when + dt.timedelta(hours=6)),
        },
        "assumedRoleUser": {
            "assumedRoleId": f"AROA{token(rng, 17)}:{session}",
            "arn": f"arn:aws:sts::{caller.account}:assumed-role/{role}/{session}",
        },
    }
    return request, response


# eventName -> (rng, caller, when) -> (requestParameters, responseElements)
MANAGEMENT_PARAMETERS = {
    "AssumeRole": assume_role,
    "DescribeInstances": lambda rng, caller, when: ({"instancesSet": {}, "filterSet": {}}, None),
    "DescribeSecurityGroups": lambda rng, caller, when: (
        {"securityGroupSet": {}, "filterSet": {}},
        None,
    ),
    "GetMetricData": lambda rng, caller, when: (
        {"startTime": stamp(when - dt.timedelta(minutes=10)), "maxDatapoints": 500},
        None,
    ),
    "GetParameters": lambda rng, caller, when: (
        {"names": ["/orders-eu/db/host", "/orders-eu/feature-flags"]},
        None,
    ),
    "GetSecretValue": lambda rng, caller, when: ({"secretId": "prod/reporting/warehouse"}, None),
    "GetTable": lambda rng, caller, when: ({"databaseName": "curated", "name": "orders"}, None),
    "GetTables": lambda rng, caller, when: ({"databaseName": "curated"}, None),
    "CreateLogStream": lambda rng, caller, when: (
        {
            "logGroupName": "/aws/ec2/log-shipper",
            "logStreamName": f"{when:%Y/%m/%d}/{token(rng, 32, HEX)}",
        },
        None,
    ),
    "GetRole": lambda rng, caller, when: (
        {"roleName": rng.choice(("DataPipeline", "ReportingBatch", "LogShipper"))},
        None,
    ),
    "GetBucketPolicy": lambda rng, caller, when: (
        {"bucketName": "acme-finance-reports", "Host": "s3.amazonaws.com"},
        None,
    ),
    "ListBuckets": lambda rng, caller, when: ({"Host": "s3.eu-west-1.amazonaws.com"}, None),
    "StartQueryExecution": lambda rng, caller, when: (
        {
            "queryString": "SELECT region, sum(total) FROM curated.orders GROUP BY 1",
            "workGroup": "analysts",
        },
        {"queryExecutionId": new_uuid(rng)},
    ),
    "GetQueryExecution": lambda rng, caller, when: ({"queryExecutionId": new_uuid(rng)}, None),
}


def management_event(rng, activity, when):
    caller = CALLERS[activity.caller]
    request, response = MANAGEMENT_PARAMETERS[activity.name](rng, caller, when)
    record = {
        "eventVersion": "1.09" if activity.service != "s3" else "1.10",
        "userIdentity": identity(caller, caller.account, when),
        "eventTime": stamp(when),
        "eventSource": f"{activity.service}.amazonaws.com",
        "eventName": activity.name,
        "awsRegion": activity.region,
        "sourceIPAddress": activity.source,
        "userAgent": USER_AGENTS[activity.user_agent],
        "requestParameters": request,
        "responseElements": response,
        "requestID": new_uuid(rng),
        "eventID": new_uuid(rng),
        "readOnly": activity.read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": caller.account,
        "eventCategory": "Management",
    }
    if caller.kind != "AWSService":
        record["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{activity.service}.{activity.region}.amazonaws.com",
        }
    if activity.user_agent == "console":
        record["sessionCredentialFromConsole"] = "true"
    return record


def console_sign_in(rng, caller, when):
    return {
        "eventVersion": "1.09",
        "userIdentity": identity(caller, caller.account, when),
        "eventTime": stamp(when),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": US,
        "sourceIPAddress": OFFICE_EGRESS,
        "userAgent": USER_AGENTS["browser"],
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
        "eventID": new_uuid(rng),
        "readOnly": False,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
        "recipientAccountId": caller.account,
        "eventCategory": "Management",
    }


# --- a day of traffic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """A record and the trail stream (account, region) it is delivered to."""

    account: str
    region: str
    when: dt.datetime
    record: dict


@dataclass(frozen=True)
class EndpointCall:
    """One call through a VPC endpoint, before it is written down."""

    caller: Caller
    owner: str  # the endpoint's account
    region: str
    service: str
    name: str
    source: str
    denied: bool = False
    bucket: str = ""
    user_agent: str = "boto3"


def endpoint_call_records(rng, when, call):
    """The network activity record, and the S3 data event when the bucket's trail logs one."""
    record = network_activity(
        rng,
        when,
        caller=call.caller,
        owner=call.owner,
        region=call.region,
        service=call.service,
        name=call.name,
        source=call.source,
        denied=call.denied,
    )
    yield Delivered(call.owner, call.region, when, record)
    bucket = BUCKETS.get(call.bucket) if call.service == "s3" else None
    # A denied call never reached S3, so S3 logs nothing for it.
    if bucket is not None and bucket.data_events and not call.denied:
        record = s3_data_event(
            rng,
            when,
            caller=call.caller,
            bucket=call.bucket,
            name=call.name,
            source=call.source,
            user_agent=call.user_agent,
            endpoint=ENDPOINTS[(call.owner, call.region, "s3")],
        )
        yield Delivered(bucket.owner, bucket.region, when, record)


def workload_records(rng, day, workload):
    for when in times_of_day(rng, day, workload.per_day, workload.hours):
        call = EndpointCall(
            caller=CALLERS[workload.caller],
            owner=workload.endpoint_owner,
            region=workload.region,
            service=workload.service,
            name=weighted(rng, workload.operations),
            source=rng.choice(workload.sources),
            denied=workload.denied,
            bucket=workload.bucket,
            user_agent=workload.user_agent,
        )
        yield from endpoint_call_records(rng, when, call)


def management_records(rng, day, activity):
    for when in times_of_day(rng, day, activity.per_day, activity.hours):
        account = CALLERS[activity.caller].account
        yield Delivered(account, activity.region, when, management_event(rng, activity, when))


def console_records(rng, day):
    for caller_key, clock in CONSOLE_SIGN_INS:
        caller = CALLERS[caller_key]
        when = at(day, clock)
        yield Delivered(caller.account, US, when, console_sign_in(rng, caller, when))
    for caller_key, bucket_name, count, hours in CONSOLE_UPLOADS:
        caller = CALLERS[caller_key]
        bucket = BUCKETS[bucket_name]
        for when in times_of_day(rng, day, count, hours):
            record = s3_data_event(
                rng,
                when,
                caller=caller,
                bucket=bucket_name,
                name="PutObject",
                source=OFFICE_EGRESS,
                user_agent="console",
            )
            yield Delivered(bucket.owner, bucket.region, when, record)


def incident_records(rng, day, incident):
    start = at(day, incident.start)
    for offset, service, name, denied in incident.steps:
        call = EndpointCall(
            caller=CALLERS[incident.caller],
            owner=incident.endpoint_owner,
            region=incident.region,
            service=service,
            name=name,
            source=incident.source,
            denied=denied,
            bucket=incident.bucket,
            user_agent=incident.user_agent,
        )
        yield from endpoint_call_records(rng, start + dt.timedelta(seconds=offset), call)


def day_records(day, index):
    """Every record of one day; the incidents are planted on the first day only."""
    rng = random.Random(f"{SEED}:{day.isoformat()}")
    records = []
    for workload in WORKLOADS:
        records.extend(workload_records(rng, day, workload))
    for activity in MANAGEMENT:
        records.extend(management_records(rng, day, activity))
    records.extend(console_records(rng, day))
    if index == 0:
        for incident in INCIDENTS:
            records.extend(incident_records(rng, day, incident))
    return records


# --- delivery -------------------------------------------------------------------------------------


def delivery_window(when):
    return when.replace(minute=when.minute - when.minute % DELIVERY_MINUTES, second=0)


def batches(records):
    """Records grouped per trail stream and delivery window, each batch in time order."""
    grouped = {}
    for delivered in records:
        key = (delivered.account, delivered.region, delivery_window(delivered.when))
        grouped.setdefault(key, []).append(delivered)
    for key in sorted(grouped):
        # sorted() is stable: records of the same second keep their generation order.
        yield key, [d.record for d in sorted(grouped[key], key=lambda d: d.when)]


def object_path(rng, account, region, window):
    name = (
        f"{account}_CloudTrail_{region}_{window:%Y%m%dT%H%MZ}_"
        f"{token(rng, 16, FILE_SUFFIX_ALPHABET)}.json.gz"
    )
    return Path("AWSLogs", account, "CloudTrail", region, f"{window:%Y/%m/%d}", name)


def gzip_bytes(payload):
    # No file name and a zero mtime in the header: the bytes depend on the payload only.
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as out:
        out.write(payload)
    return buffer.getvalue()


def encode(records):
    return json.dumps({"Records": records}, separators=(",", ":")).encode()


def delivery_objects(days):
    """(relative path, gzip bytes, record count) for every file the trails deliver."""
    for index in range(days):
        day = FIRST_DAY + dt.timedelta(days=index)
        names = random.Random(f"{SEED}:{day.isoformat()}:file-names")
        for (account, region, window), records in batches(day_records(day, index)):
            yield (
                object_path(names, account, region, window),
                gzip_bytes(encode(records)),
                len(records),
            )


def write_dataset(out, days):
    """Write the dataset under out, removing delivery files left over from an earlier run."""
    written = set()
    records = size = 0
    for relative, data, count in delivery_objects(days):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.add(path)
        records += count
        size += len(data)
    for stale in sorted((out / "AWSLogs").rglob("*.json.gz")):
        if stale not in written:
            stale.unlink()
    return len(written), records, size


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="consecutive days of traffic to write, from 2026-11-20 (default: 1); "
        "incidents are planted on the first day only",
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    files, records, size = write_dataset(args.out, args.days)
    print(
        f"wrote {records} records in {files} files ({size} bytes) under {args.out}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
