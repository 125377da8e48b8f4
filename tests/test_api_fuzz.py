"""Schemathesis against the served OpenAPI schema: no 5xx, every response as documented."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from tests.server_fixtures import (
    API_KEY,
    SAMPLE_ARTICLES,
    LiveServer,
    serve_components,
    settings_for,
)
from ui.wiring import build_store

SEEN: Counter[str] = Counter()
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Valid requests to these would fetch the generated URLs: every host name a lookup sent to
# the machine's resolver. They are fuzzed with invalid requests only; tests/test_fetch.py,
# test_web_server.py and test_attack_fetch.py send them valid ones against a local site.
FETCHING = {"POST /api/articles/urls", "POST /api/feeds"}


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory,
                  embedder: MiniLMEmbedder) -> Iterator[LiveServer]:
    """A server of its own over the sample article (fuzzed uploads and deletes change it),
    behind a bearer token, as deployed; schemathesis also checks that bad tokens fail."""
    data = tmp_path_factory.mktemp("fuzz-data")
    settings = settings_for(data, max_request_kb=64, max_file_mb=0.2, api_key=API_KEY,
                            auth_failures_per_minute=10_000,
                            fetch_refuse=["0.0.0.0/0", "::/0"])  # fetch from nowhere
    ingest_paths([SAMPLE_ARTICLES], build_store(settings), embedder, max_bytes=10**6,
                 progress=False)
    server = serve_components(settings, embedder)
    yield server
    server.stop()
    print(f"\nschemathesis: {sum(SEEN.values())} requests, statuses {dict(sorted(SEEN.items()))}")


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json", headers=AUTH)


def fuzz(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode,
         base_url: str, examples: int) -> None:
    """Send ``examples`` generated requests and run every schemathesis check on the responses.

    Left out: 'positive_data_acceptance', which expects every schema-valid request to succeed.
    Some rules cannot be said in JSON Schema (the last chat message must be the user's, a
    question must not be only spaces); those requests rightly get a 422 in the error shape.
    """

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: schemathesis.Case) -> None:
        # The real token replaces a generated one; a negative case that dropped the required
        # header is sent without it (adding it back made a rightly accepted request look
        # like "invalid data accepted").
        dropped = "Authorization" not in (case.headers or {})
        headers = {} if mode is schemathesis.GenerationMode.NEGATIVE and dropped else AUTH
        response = case.call_and_validate(base_url=base_url, timeout=120, headers=headers,
                                          excluded_checks=[positive_data_acceptance])
        SEEN[str(response.status_code)] += 1
        assert response.status_code < 500
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, response.text  # the one error shape

    run()


def test_api_never_fails_and_answers_as_documented(api_schema: schemathesis.BaseSchema,
                                                    fuzzed_server: LiveServer) -> None:
    """Valid and invalid requests to every operation: no 5xx, no response off its schema."""
    operations = [r.ok() for r in api_schema.get_all_operations()]
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            if (f"{operation.method.upper()} {operation.path}" in FETCHING
                    and mode is schemathesis.GenerationMode.POSITIVE):
                continue
            fuzz(operation, mode, fuzzed_server.url, examples=10)
    assert sum(SEEN.values()) >= 10 * len(operations)


def test_fuzzing_reached_every_operation(api_schema: schemathesis.BaseSchema) -> None:
    """Guard against a schema that silently lost its routes (then the fuzz test is empty)."""
    operations = {f"{op.method.upper()} {op.path}"
                  for op in (r.ok() for r in api_schema.get_all_operations())}
    assert {"POST /api/query", "POST /api/query/stream", "POST /api/articles",
            "GET /api/articles", "DELETE /api/articles/{article_id}", "GET /api/health",
            "GET /v1/models", "POST /v1/chat/completions", "POST /api/articles/urls",
            "GET /api/feeds", "POST /api/feeds", "POST /api/feeds/refresh",
            "DELETE /api/feeds"} <= operations
