"""Which backend the settings select, the OpenAI path, and `rag ask` streaming in a terminal."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder
from index.store import PassageStore
from rag.citations import CitationChecker
from rag.condense import LLMCondenser, RuleCondenser
from rag.llm import LlamaCppChatModel, OpenAIChatModel
from tests.helpers import answer_gate
from tests.llm.conftest import (
    SAMPLE_ARTICLES,
    LLMServer,
    assert_only_supported_citations,
    free_port,
    make_assistant,
    smollm2_path,
)
from ui.settings import Settings
from ui.wiring import build_answerer, build_chat_model

pytestmark = pytest.mark.llm


def _settings(**values: object) -> Settings:
    return Settings(llm_max_tokens=48, **values)  # type: ignore[arg-type]


def test_no_model_settings_select_the_extractive_answerer(embedder: MiniLMEmbedder) -> None:
    answerer, condenser, description = build_answerer(_settings(), embedder, answer_gate(),
                                                      environ={})
    assert answerer.name == "extractive" and isinstance(condenser, RuleCondenser)
    assert "extractive" in description


def test_base_url_selects_the_compatible_server_and_keeps_the_openai_key_away(
        embedder: MiniLMEmbedder, llm_server: LLMServer) -> None:
    settings = _settings(llm_base_url=llm_server.base_url, llm_model="local-model")
    answerer, condenser, description = build_answerer(
        settings, embedder, answer_gate(),
        environ={"OPENAI_API_KEY": "sk-not-for-other-servers"})
    assert answerer.name == "llm:openai-compatible:local-model"
    assert isinstance(condenser, LLMCondenser)
    assert llm_server.base_url in description


def test_model_path_wins_over_the_openai_key(embedder: MiniLMEmbedder) -> None:
    model = build_chat_model(_settings(llm_model_path=smollm2_path(), llm_context_window=1024),
                             environ={"OPENAI_API_KEY": "sk-x"})
    assert isinstance(model, LlamaCppChatModel)


def test_openai_key_selects_openai_and_answers_with_supported_citations(
        llm_server: LLMServer, sample_store: PassageStore, embedder: MiniLMEmbedder) -> None:
    # The real OpenAI cannot be reached here: OPENAI_BASE_URL points the same client at the
    # local server, which serves any model name.
    environ = {"OPENAI_API_KEY": llm_server.api_key, "OPENAI_BASE_URL": llm_server.base_url}
    model = build_chat_model(_settings(), environ=environ)
    assert isinstance(model, OpenAIChatModel) and model.name == "openai:gpt-4o-mini"
    answer = make_assistant(model, sample_store, embedder).ask("Who brokered the ceasefire?")
    assert answer.answerer == "llm:openai:gpt-4o-mini"
    assert_only_supported_citations(answer, CitationChecker(embedder))


@pytest.fixture(scope="module")
def cli_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli-data")
    subprocess.run([sys.executable, "-m", "ui.cli", "-q", "--data-dir", str(data_dir),
                    "ingest", str(SAMPLE_ARTICLES)], check=True, capture_output=True)
    return data_dir


def _rag_ask(data_dir: Path, env: dict[str, str], question: str,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", "--data-dir", str(data_dir), "ask",
                           "--top-k", "2", question], env=env, capture_output=True,
                          text=True, timeout=600)


def test_rag_ask_streams_then_prints_the_checked_answer(
        cli_data_dir: Path, llm_server: LLMServer, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "RAG_LLM_BASE_URL": llm_server.base_url,
           "RAG_LLM_API_KEY": llm_server.api_key, "RAG_LLM_MAX_TOKENS": "48"}
    result = _rag_ask(cli_data_dir, env, "What did the US ambassador to the UN say?")
    assert result.returncode == 0, result.stderr
    assert "answerer: language model openai-compatible:local-model" in result.stderr
    out = result.stdout
    if "[citation check: removed" in out:
        assert "checked answer below" in out
    # the checked answer ends the output: an abstention, or cited passages with their titles
    assert "The articles do not cover this question." in out or "\n[1] Syria: UN" in out


def test_rag_ask_with_the_server_down_prints_one_line_and_exits_2(
        cli_data_dir: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "RAG_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
           "RAG_LLM_MAX_RETRIES": "0"}
    started = time.monotonic()
    result = _rag_ask(cli_data_dir, env, "Who brokered the ceasefire?")
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("rag: error:")]
    assert len(errors) == 1 and "cannot reach" in errors[0]
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60  # mostly start-up: imports and the embedder
