"""pytest fixtures for S3 over a real moto server on 127.0.0.1; register with
``pytest_plugins = ["tests.support.s3_fixtures"]`` in the root ``tests/conftest.py``.

Two session-scoped servers, each started on first use:

* ``moto_endpoint``: no IAM enforcement; any keys work (``DUMMY_KEYS``).
* ``moto_iam``: IAM enforced after bootstrapping an admin user; ``deployment_keys`` is our
  deployment's identity there, and ``delivery_target`` a fresh customer bucket and role.

The helpers and types these fixtures return live in ``tests.support.moto_server``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.moto_server import (
    AWS_ENV_TO_DROP,
    BOOTSTRAP_ACTIONS,
    DUMMY_KEYS,
    ISOLATED_AWS_ENV,
    AwsKeys,
    DeliveryTarget,
    MotoIam,
    bootstrap_admin,
    client_factory_for,
    create_bucket,
    create_deployment_user,
    make_delivery_target,
    running_moto_server,
    s3_client,
    unique_name,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from uvm_reporting.storage.s3 import S3ClientFactory


@pytest.fixture(scope="session")
def aws_isolation() -> Iterator[None]:
    """No AWS credentials, profile or config file of the developer reaches boto3 in this process."""
    with pytest.MonkeyPatch.context() as patch:
        for name in AWS_ENV_TO_DROP:
            patch.delenv(name, raising=False)
        for name, value in ISOLATED_AWS_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_isolation: None) -> Iterator[str]:
    """A moto server without IAM enforcement: ``http://127.0.0.1:<port>``."""
    with running_moto_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture
def moto_s3(moto_endpoint: str) -> S3Client:
    """An S3 client for ``moto_endpoint`` (any keys work there)."""
    return s3_client(moto_endpoint, DUMMY_KEYS)


@pytest.fixture
def moto_bucket(moto_s3: S3Client) -> str:
    """A fresh, empty bucket on ``moto_endpoint``."""
    return create_bucket(moto_s3, unique_name("uvm-test"))


@pytest.fixture
def moto_client_factory(moto_endpoint: str) -> S3ClientFactory:
    return client_factory_for(moto_endpoint, DUMMY_KEYS)


@pytest.fixture(scope="session")
def moto_iam(aws_isolation: None) -> Iterator[MotoIam]:
    """A moto server that authenticates and authorizes every request after the admin's bootstrap."""
    with running_moto_server(initial_no_auth_action_count=BOOTSTRAP_ACTIONS) as endpoint_url:
        yield MotoIam(endpoint_url, bootstrap_admin(endpoint_url))


@pytest.fixture(scope="session")
def deployment_keys(moto_iam: MotoIam) -> AwsKeys:
    """Our deployment's identity on ``moto_iam``: may call sts:AssumeRole, nothing else."""
    return create_deployment_user(moto_iam.iam(), unique_name("uvm-reporting-deployment"))


@pytest.fixture
def deployment_client_factory(moto_iam: MotoIam, deployment_keys: AwsKeys) -> S3ClientFactory:
    return client_factory_for(moto_iam.endpoint_url, deployment_keys)


@pytest.fixture
def delivery_target(moto_iam: MotoIam, deployment_keys: AwsKeys) -> DeliveryTarget:
    return make_delivery_target(moto_iam, deployment_keys)
