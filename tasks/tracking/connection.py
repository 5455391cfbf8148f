"""The MLflow store of lab2: which one, checked before any run exists, secrets redacted, and the
retries every tracking call goes through.

A tracking function is `retried` (or its call `retrying`): tenacity retries it with exponential
backoff on transient errors (connection refused or reset, timeouts, HTTP 502/503/504, SQLite
"database is locked", a store whose tables another process is creating) for
LAB2_TRACKING_RETRY_SECONDS (default 60), then a TrackingError names the tracking URI (credentials
redacted) and what was not logged.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

if sys.platform != "win32":  # POSIX; on Windows, no lock around store creation
    import fcntl

import requests
import tenacity
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import OperationalError

from lab2.core.errors import InputError
from lab2.core.settings import settings

STOP_WAIT_SECONDS = 5.0  # how long a stop waits for a tracking call in flight to end


KNOWN_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql")


SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME")


_TRANSIENT = re.compile(
    r"database is locked|Max retries exceeded|Connection refused|Connection "
    r"aborted|Connection reset"
    r"|Connection broken|IncompleteRead|RemoteDisconnected|timed out|error code "
    r"50[234]|TEMPORARILY_UNAVAILABLE"
    # Two writers inserting one dataset or experiment tag at once; a retry finds (or updates) the
    # row the other wrote.
    r"|UNIQUE constraint failed: (datasets|experiment_tags)\.|duplicate key value violates "
    r"unique constraint \"?(dataset|experiment_tag)"
)


T = TypeVar("T")
P = ParamSpec("P")


class TrackingError(RuntimeError):
    """MLflow did not answer within the retry window: names the tracking URI and what was not
    logged."""


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's default SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def ui_command(uri: str) -> str:
    """The command (or address) that opens the MLflow UI on `uri`, credentials redacted."""
    if uri.startswith(("http://", "https://")):
        return f"open {redact(uri)} in a browser"
    return f"lab2 ui --tracking-uri {redact(uri)}"


def redact(text: str) -> str:
    """`text` with URL credentials, secret query values and lab2's secret env values replaced by
    ***."""
    text = re.sub(r"://[^/\s@]+@", "://***@", text)
    text = re.sub(
        r"(?i)\b((?:password|passwd|token|secret|api_key|access_key)=)[^&\s]+", r"\1***", text
    )
    for name in SECRET_ENV[:2]:
        if value := os.environ.get(name):
            text = text.replace(value, "***")
    return text


def check_tracking_uri(uri: str) -> None:
    """Raise InputError unless `uri` has a known scheme and its store can be reached (an http server
    answers)."""
    shown = redact(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as error:
        raise InputError(
            f"tracking URI {shown} is malformed ({error}); use sqlite:///PATH or http://HOST:PORT"
        ) from None
    scheme = parts.scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES:
        raise InputError(
            f"tracking URI {shown}: unknown scheme {parts.scheme!r}; use one of "
            f"{', '.join(KNOWN_SCHEMES)}"
        )
    if scheme in ("http", "https"):
        _check_server(uri, shown, parts.hostname, port)
    elif scheme in ("sqlite", "file"):
        _check_local_store(uri, shown, parts.path)


def _check_server(uri: str, shown: str, host: str | None, port: int | None) -> None:
    if not host:
        raise InputError(f"tracking URI {shown} names no host; use http://HOST:PORT")
    if port == 0:
        raise InputError(f"tracking URI {shown} names port 0; use http://HOST:PORT")
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as error:
        reason = type(error).__name__
        raise InputError(
            f"tracking URI {shown}: no MLflow server answers there ({reason}); start one "
            "(mlflow server --host 127.0.0.1 --port PORT) or unset MLFLOW_TRACKING_URI"
        ) from None


def store_exists(uri: str) -> bool:
    """Whether `uri`'s store holds anything yet: a local one's file or folder is there (a server's
    always is). Opening a local store creates it."""
    parts = urlsplit(uri)
    return (
        parts.scheme.split("+")[0] not in ("sqlite", "file")
        or _local_path(uri, parts.path).exists()
    )


def _local_path(uri: str, path: str) -> Path:
    # sqlite:///rel.db is relative, sqlite:////abs.db absolute
    return Path(path[1:] if uri.startswith("sqlite:") else path)


def _check_local_store(uri: str, shown: str, path: str) -> None:
    if uri.startswith("sqlite://") and not path:
        raise InputError(f"tracking URI {shown} names no database file; use sqlite:///PATH")
    folder = _local_path(uri, path).parent
    if not folder.is_dir():
        raise InputError(
            f"tracking URI {shown}: folder {folder} does not exist; use an existing folder"
        )


def retrying(what: str, call: Callable[[], T]) -> T:
    """`call()`, retried with exponential backoff on transient errors; TrackingError once the window
    has passed."""
    window = settings().tracking_retry_seconds
    retry = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        wait=tenacity.wait_exponential(multiplier=0.2, max=5),  # 0.2 s, 0.4 s, ... then 5 s
        stop=tenacity.stop_before_delay(window),
    )
    try:
        return retry(_whole, call)
    except tenacity.RetryError as error:
        detail = redact(str(error.last_attempt.exception()))[:300]
        raise TrackingError(
            f"MLflow at {redact(tracking_uri())} did not answer for {window:g} s: "
            f"{what} was not logged ({detail})"
        ) from None
    except Exception as error:
        if redact(str(error)) != str(error):  # MLflow's messages quote the URI, credentials and all
            raise TrackingError(f"{what} was not logged: {redact(str(error))[:500]}") from None
        raise


def retried(what: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A tracking function whose every call is `retrying`; `what`, formatted with the call's
    arguments ("the end of run {run_id}"), names what was not logged."""

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            named = signature.bind(*args, **kwargs).arguments
            return retrying(what.format(**named), lambda: function(*args, **kwargs))

        return call

    return decorate


def _whole(call: Callable[[], T]) -> T:
    """`call()`, on a thread of its own when asked from the main thread, where Python runs signal
    handlers: a stop (Ctrl-C, SIGTERM, a cancel) raised there then waits for the call to end instead
    of cutting one of the store's commits in half, which would leave a SQLite store locked for the
    stop's own cleanup."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    result: Future[T] = Future()
    threading.Thread(
        target=_settle, args=(result, call), name="lab2-mlflow-call", daemon=True
    ).start()
    try:
        return result.result()
    except BaseException:
        wait([result], timeout=STOP_WAIT_SECONDS)  # a stop: the call's writes end first
        raise


def _settle(result: Future[T], call: Callable[[], T]) -> None:
    try:
        result.set_result(call())
    except BaseException as error:  # handed to the caller's thread
        result.set_exception(error)


def _transient(error: BaseException) -> bool:
    if isinstance(error, TrackingError):  # an inner call already retried for the whole window
        return False
    # SQLAlchemy's OperationalError: a locked SQLite file, or tables another process is creating.
    transient_types = (
        requests.ConnectionError,
        requests.Timeout,
        ConnectionError,
        TimeoutError,
        OperationalError,
    )
    if isinstance(error, transient_types):
        return True
    code = getattr(error, "error_code", "")
    return code == "TEMPORARILY_UNAVAILABLE" or bool(_TRANSIENT.search(str(error)))


@functools.lru_cache(maxsize=8)
def _client(uri: str) -> MlflowClient:
    # lab2 retries on its own clock: MLflow's HTTP client fails fast instead of retrying for
    # minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # MLflow prints "View run … at: URI" per run: noise for a grid, and a leak when the URI holds
    # credentials.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if redact(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with _store_creation_lock(uri):
        return MlflowClient(tracking_uri=uri)


@contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive flock on a local SQLite file while MLflow creates or migrates its tables.

    Two processes creating one fresh store at once would otherwise race in its migrations. SQLite's
    own locks are fcntl locks, which flock does not touch.
    """
    if sys.platform == "win32" or not uri.startswith("sqlite:///"):
        yield
        return
    with Path(uri.removeprefix("sqlite:///")).open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def client() -> MlflowClient:
    """The MLflow client of the current tracking URI. Its calls are not retried: call it inside a
    `retried` function or through `retrying`."""
    return _client(tracking_uri())


@retried("experiment {name!r}")
def experiment_id(name: str) -> str:
    """Id of experiment `name`, created if missing (safe when two processes race to create it)."""
    experiment = client().get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client().create_experiment(name)
    except MlflowException as error:
        if _transient(error):
            raise
        raced = client().get_experiment_by_name(name)  # another process created it first
        if raced is None:  # not a race: the error stands
            raise
        return raced.experiment_id


@retried("experiment {name!r}")
def find_experiment(name: str) -> str | None:
    """Id of experiment `name`, None if there is none (nothing is created)."""
    experiment = client().get_experiment_by_name(name)
    return experiment.experiment_id if experiment else None


@retried("the runs of experiment {exp_id}")
def search_runs(
    exp_id: str, query: str, order_by: list[str] | None = None, max_results: int | None = None
) -> list[Run]:
    """The runs of the experiment that `query` matches (all of them, page by page, unless
    `max_results` says how many)."""
    found: list[Run] = []
    token = None
    while max_results is None or len(found) < max_results:
        page_size = 1000 if max_results is None else min(1000, max_results - len(found))
        page = client().search_runs(
            [exp_id], query, order_by=order_by, max_results=page_size, page_token=token
        )
        found += page
        token = page.token
        if not token:
            break
    return found


@functools.lru_cache(maxsize=64)
@retried("the experiment of run {run_id}")
def experiment_of(run_id: str) -> str:
    """The experiment a run belongs to."""
    return client().get_run(run_id).info.experiment_id
