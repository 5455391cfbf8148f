"""The system tier's HTTP helper: a busy server (429, 5xx, no connection) is asked again, for a
bounded time."""

import pytest
import requests

from tests.helpers import http


class FakeServer:
    """Answers (a status code or an exception) in turn, then 200; records the waits between
    calls."""

    def __init__(self, monkeypatch, answers, clock_step: float = 0.0):
        self.answers, self.calls, self.sleeps, self.now = list(answers), [], [], 0.0
        self.clock_step = clock_step
        monkeypatch.setattr(http.requests, "request", self.request)
        monkeypatch.setattr(http.time, "sleep", self.sleep)
        monkeypatch.setattr(http.time, "monotonic", lambda: self.now)

    def request(self, method, url, **options):
        self.calls.append((method, url, options))
        self.now += self.clock_step
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        response = requests.Response()
        response.status_code, response._content, response.url = answer, b'{"ok": true}', url
        if answer == 429:
            response.headers["Retry-After"] = "3"
        return response

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_busy_answers_and_lost_connections_are_asked_again_with_backoff(monkeypatch):
    fake = FakeServer(monkeypatch, [503, requests.ConnectionError("refused"), 429, 500])
    assert http.http_json("POST", "http://127.0.0.1:9/api/flows/filter", {}) == {"ok": True}
    assert len(fake.calls) == 5 and fake.sleeps == [0.5, 1.0, 3.0, 4.0]  # 429 waits its Retry-After
    assert all(options["timeout"] == 30 and options["json"] == {} for _, _, options in fake.calls)


def test_a_client_error_is_not_retried_and_fails_the_call(monkeypatch):
    fake = FakeServer(monkeypatch, [404])
    with pytest.raises(requests.HTTPError, match="404"):
        http.http_json("GET", "http://127.0.0.1:9/api/flow_runs/x")
    assert len(fake.calls) == 1
    FakeServer(monkeypatch, [401])
    assert http.request("GET", "http://127.0.0.1:9/").status_code == 401  # returned as it is


def test_a_server_busy_for_longer_than_the_budget_fails_with_its_last_answer(monkeypatch):
    fake = FakeServer(monkeypatch, [503] * 1000)
    with pytest.raises(requests.HTTPError, match="503"):
        http.http_json("GET", "http://127.0.0.1:9/health", retry_for=60)
    assert 60 - 8 <= fake.now <= 60 and max(fake.sleeps) == 8.0
    FakeServer(monkeypatch, [requests.ConnectionError("refused")] * 1000)
    with pytest.raises(requests.ConnectionError):
        http.request("GET", "http://127.0.0.1:9/health", retry_for=10)


def test_a_create_that_timed_out_is_not_sent_twice(monkeypatch):
    fake = FakeServer(monkeypatch, [requests.ReadTimeout("slow")])
    with pytest.raises(requests.ReadTimeout):
        http.request(
            "POST",
            "http://127.0.0.1:9/api/deployments/d/create_flow_run",
            json={},
            idempotent=False,
        )
    assert len(fake.calls) == 1
    fake = FakeServer(monkeypatch, [requests.ReadTimeout("slow")])
    assert (
        http.request("POST", "http://127.0.0.1:9/api/flow_runs/filter", json={}).ok
        and len(fake.calls) == 2
    )
