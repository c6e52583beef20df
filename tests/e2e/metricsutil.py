"""Reading Prometheus metrics in tests: one scrape, parsed; the hub's /hub/metrics."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape, parsed: value(name, **labels) is 0 for a series not (yet) there."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.help: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.help[family.name] = family.documentation
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def hub_metrics(hub) -> Scrape:
    r = requests.get(
        f"{hub.url}/hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return Scrape(r.text)
