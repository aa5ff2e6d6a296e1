"""A real ``moto_server`` process on 127.0.0.1 for S3/STS/IAM tests over HTTP, plus IAM set-up helpers.

``running_moto_server()`` starts the server as a separate process on a free port, waits until
it answers, yields its endpoint URL and stops it (SIGTERM, then SIGKILL). With
``initial_no_auth_action_count`` set, moto authenticates and authorizes every request after
that many; :func:`bootstrap_admin` spends exactly :data:`BOOTSTRAP_ACTIONS` of them on an
admin user whose keys then do all further set-up.

Clients built here never read the developer's ``~/.aws``: sessions get explicit keys and
``/dev/null`` as config and credentials files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config

from tests.support.ports import free_port
from tests.support.waiting import wait_until
from uvm_reporting.database.accounts import new_external_id
from uvm_reporting.storage.s3 import S3ClientFactory, role_permissions_policy, trust_policy

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
BOOTSTRAP_ACTIONS = 3  # create_user, put_user_policy, create_access_key
DUMMY_KEY = "testing"  # any key works on a server without IAM enforcement
S3_CONFIG = Config(
    s3={"addressing_style": "path"}, signature_version="s3v4", retries={"mode": "standard", "max_attempts": 2}
)

AWS_ENV_TO_DROP = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_IAM",
)
ISOLATED_AWS_ENV = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def moto_command() -> list[str]:
    """The venv's ``moto_server`` console script, else ``python -m moto.server``."""
    if MOTO_SERVER.exists():
        return [str(MOTO_SERVER)]
    return [sys.executable, "-m", "moto.server"]


def _server_env(initial_no_auth_action_count: int | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in AWS_ENV_TO_DROP and name != "INITIAL_NO_AUTH_ACTION_COUNT"
    }
    env.update(ISOLATED_AWS_ENV)
    if initial_no_auth_action_count is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(initial_no_auth_action_count)
    return env


def _answers(endpoint_url: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"moto_server exited with {process.returncode}:\n{log_path.read_text()}")
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/config", timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def running_moto_server(
    *, initial_no_auth_action_count: int | None = None, startup_timeout: float = 30.0, log_dir: Path | None = None
) -> Iterator[str]:
    """Run ``moto_server`` on a free 127.0.0.1 port; yield ``http://127.0.0.1:<port>``; stop it.

    ``initial_no_auth_action_count``: moto's ``INITIAL_NO_AUTH_ACTION_COUNT`` (None: never
    enforce IAM). The server's output goes to a log file shown when start-up fails.
    """
    with tempfile.TemporaryDirectory(prefix="moto-server-", dir=log_dir) as folder:
        log_path = Path(folder) / "moto_server.log"
        for attempt in range(3):  # another process may take the free port before moto binds it
            port = free_port()
            endpoint_url = f"http://127.0.0.1:{port}"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [*moto_command(), "-H", "127.0.0.1", "-p", str(port)],
                    env=_server_env(initial_no_auth_action_count),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                wait_until(
                    lambda: _answers(endpoint_url, process, log_path),  # noqa: B023 - used at once
                    timeout=startup_timeout,
                    what=f"moto_server on port {port}",
                )
            except AssertionError:
                _stop(process)
                if attempt < 2 and b"Address already in use" in log_path.read_bytes():
                    continue
                raise
            try:
                yield endpoint_url
            finally:
                _stop(process)
            return


# --- credentials and clients ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwsKeys:
    """An access key pair and the ARN of the IAM user it belongs to."""

    access_key_id: str
    secret_access_key: str
    arn: str
    session_token: str | None = None


DUMMY_KEYS = AwsKeys(DUMMY_KEY, DUMMY_KEY, f"arn:aws:iam::{ACCOUNT_ID}:user/moto")


def isolated_session(keys: AwsKeys, region: str = REGION) -> boto3.session.Session:
    """A boto3 session with exactly these keys, reading no AWS config or credentials file."""
    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    return boto3.session.Session(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
        region_name=region,
        botocore_session=core,
    )


def s3_client(endpoint_url: str, keys: AwsKeys) -> S3Client:
    return isolated_session(keys).client("s3", endpoint_url=endpoint_url, config=S3_CONFIG)


def iam_client(endpoint_url: str, keys: AwsKeys) -> IAMClient:
    return isolated_session(keys).client("iam", endpoint_url=endpoint_url)


def sts_client(endpoint_url: str, keys: AwsKeys) -> STSClient:
    return isolated_session(keys).client("sts", endpoint_url=endpoint_url)


def _allow(actions: list[str] | str, resource: str | list[str] = "*") -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}
    )


def _user_with_key(iam: IAMClient, name: str, policy: str) -> AwsKeys:
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AwsKeys(key["AccessKeyId"], key["SecretAccessKey"], arn)


def bootstrap_admin(endpoint_url: str, name: str = "moto-admin") -> AwsKeys:
    """Create an all-powerful IAM user with exactly BOOTSTRAP_ACTIONS unauthenticated calls."""
    return _user_with_key(iam_client(endpoint_url, DUMMY_KEYS), name, _allow("*"))


def create_deployment_user(iam: IAMClient, name: str) -> AwsKeys:
    """Our deployment's identity: an IAM user that may call sts:AssumeRole (on any role) and nothing else."""
    return _user_with_key(iam, name, _allow("sts:AssumeRole"))


def create_customer_role(
    iam: IAMClient,
    *,
    name: str,
    trusted_principal_arn: str,
    external_id: str,
    bucket: str,
    prefix: str,
    permissions: dict[str, Any] | None = None,
) -> str:
    """The customer's role: our trust policy (principal + ExternalId) and, by default, our permissions policy.

    Returns the role ARN. ``permissions`` replaces the permissions policy (e.g. to leave the bucket out).
    """
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy(trusted_principal_arn, external_id))
    )
    policy = permissions if permissions is not None else role_permissions_policy(bucket, prefix)
    iam.put_role_policy(RoleName=name, PolicyName=f"{name}-delivery", PolicyDocument=json.dumps(policy))
    return role["Role"]["Arn"]


def create_bucket(s3: S3Client, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


# --- ready-made set-ups -------------------------------------------------------------------

# Fail fast in tests: one attempt, short timeouts (the defaults retry for production).
FAST_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=20)
OPERATOR_ACCOUNT_IDS = frozenset({"000000000001"})
"""The operator's own AWS account in tests: not moto's (ACCOUNT_ID), where the customers' roles are."""


def unique_name(stem: str) -> str:
    """A bucket- and role-safe name no other test uses (the servers live for the whole session)."""
    return f"{stem}-{uuid.uuid4().hex[:12]}"


def client_factory_for(
    endpoint_url: str,
    keys: AwsKeys,
    *,
    client_config: Config | None = None,
    operator_account_ids: frozenset[str] | None = OPERATOR_ACCOUNT_IDS,
) -> S3ClientFactory:
    """An S3ClientFactory acting as ``keys`` against ``endpoint_url``. moto keeps every user and
    role in one account, which a deployment would refuse to assume roles of; so the operator's own
    account is said to be another one, unless ``operator_account_ids`` says otherwise (``None``:
    ask moto's STS)."""
    return S3ClientFactory(
        endpoint_url,
        REGION,
        session=isolated_session(keys),
        client_config=client_config or FAST_CLIENT_CONFIG,
        operator_account_ids=operator_account_ids,
    )


@dataclass(frozen=True, slots=True)
class MotoIam:
    """A moto server enforcing IAM, and the admin keys that set things up on it."""

    endpoint_url: str
    admin: AwsKeys

    def iam(self) -> IAMClient:
        return iam_client(self.endpoint_url, self.admin)

    def s3(self) -> S3Client:
        return s3_client(self.endpoint_url, self.admin)


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """A customer's delivery set-up: bucket, prefix, region, and the role we may assume."""

    bucket: str
    prefix: str
    region: str
    role_arn: str
    external_id: str

    def check_args(self, **overrides: str) -> dict[str, Any]:
        """Keyword arguments for ``check_delivery``, with ``overrides`` applied."""
        values: dict[str, Any] = {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "role_arn": self.role_arn,
            "external_id": self.external_id,
        }
        return {**values, **overrides}


def make_delivery_target(
    moto_iam: MotoIam,
    deployment_keys: AwsKeys,
    *,
    prefix: str = "exports/uvm",
    permissions: Callable[[str, str], dict[str, Any]] | None = None,
    create: bool = True,
) -> DeliveryTarget:
    """A customer role trusting ``deployment_keys`` with a fresh ExternalId, and (``create``) its bucket.

    ``permissions(bucket, prefix)`` gives the role's permissions policy instead of ours.
    """
    bucket = unique_name("customer")
    if create:
        create_bucket(moto_iam.s3(), bucket)
    external_id = new_external_id()
    role_arn = create_customer_role(
        moto_iam.iam(),
        name=unique_name("uvm-delivery"),
        trusted_principal_arn=deployment_keys.arn,
        external_id=external_id,
        bucket=bucket,
        prefix=prefix,
        permissions=permissions(bucket, prefix) if permissions else None,
    )
    return DeliveryTarget(bucket, prefix, REGION, role_arn, external_id)
