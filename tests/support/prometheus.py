"""Read a Prometheus text exposition the way Prometheus does (prometheus_client's parser)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx2
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """Every sample of ``text``, keyed by (sample name, its labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str, headers: Mapping[str, str] | None = None) -> Samples:
    response = httpx2.get(url, headers=dict(headers or {}), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return parse_samples(response.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None when there is none."""
    return samples.get((name, frozenset(labels.items())))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample_name, labels in samples if sample_name == name and label in dict(labels)}
