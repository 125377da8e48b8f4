"""Shared test helpers: real processes, real stores, small data."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from index.embedder import MiniLMEmbedder, Vectors
from index.store import PassageStore, open_client
from rag.gate import AnswerGate
from ui.wiring import shared_language

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_DIR = ROOT / "examples" / "articles"


class RecordingEmbedder(MiniLMEmbedder):
    """The real model, recording every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        self.texts.extend(texts)
        return super().embed(texts, progress)


def answer_gate() -> AnswerGate:
    """The answerability gate on the process's one spaCy pipeline."""
    return AnswerGate(shared_language())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_store(data_dir: Path, collection: str = "articles",
               model: str = MiniLMEmbedder.name) -> PassageStore:
    return PassageStore(open_client(data_dir, None), collection, model, where=str(data_dir))


def rag_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for the `rag` command: one data folder, nothing inherited from RAG_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False",
                "NO_PROXY": "127.0.0.1,localhost", "RAG_EMBED_THREADS": "1"})
    env.update(extra)
    return env


def run_rag(*args: str, env: dict[str, str],
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the installed `rag` console script to completion."""
    return subprocess.run([str(BIN / "rag"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def start_rag(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the `rag` command; stderr is a pipe so a test can follow its progress."""
    return subprocess.Popen([str(BIN / "rag"), *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


_PLACES = ["Dunmore", "Kellfield", "Port Aldous", "Varsa", "Tallinn", "Kessling", "Brora",
           "Lowden", "Ashgrove", "Mirren", "Calder Bay", "Oston", "Pellam", "Ryford"]
_PEOPLE = ["Mara Quill", "Dana Okafor", "Lena Varga", "Tomas Brandt", "Priya Nair",
           "Marco Lindqvist", "Ava Tremblay", "Joss Herrick", "Ines Alvarado", "Kofi Mensah",
           "Hana Sato", "Olek Nowak", "Ruth Abara", "Sven Dahl"]
_TOPICS = ["a new bridge", "the harbour strike", "a school budget", "the flood defences",
           "a wind farm", "the rail timetable", "a hospital wing", "the city marathon",
           "a museum reopening", "the water tariff", "a ferry contract", "the housing plan"]
_SENTENCES = [
    "{person} said on {day} that {topic} in {place} would cost {n} million euros.",
    "Work on {topic} is due to start in {month}, according to the council of {place}.",
    "About {m} residents of {place} attended a meeting about {topic} on {day}.",
    "{person}, who has led the campaign for {topic}, called the decision long overdue.",
    "Critics in {place} say {topic} was approved without enough public consultation.",
    "The regional assembly voted {m} to {k} in favour of {topic} on {day}.",
    "{person} told reporters that the first phase would be finished by {month}.",
    "Local businesses in {place} expect {topic} to bring {m} new jobs.",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "March", "April", "June", "September", "November"]


def news_records(count: int) -> list[dict[str, object]]:
    """``count`` short news articles made here (deterministic, each text unique), shortest
    first: the crash, lock, two-server and two-stage tests need real-looking articles of
    varied lengths, not any particular news."""
    rows: list[dict[str, object]] = []
    for n in range(count):
        place, topic = _PLACES[n % len(_PLACES)], _TOPICS[(n * 5) % len(_TOPICS)]
        sentences = []
        for k in range(2 + n // 3):
            template = _SENTENCES[(n + k * 3) % len(_SENTENCES)]
            sentences.append(template.format(
                person=_PEOPLE[(n + k) % len(_PEOPLE)], place=place, topic=topic,
                day=_DAYS[(n + k) % 7], month=_MONTHS[(n * 3 + k) % len(_MONTHS)],
                n=3 + (n * 7 + k) % 90, m=100 + n * 13 + k, k=10 + (n + k) % 40))
        paragraphs = [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)]
        rows.append({"id": f"https://news.test/{n:04d}", "url": f"https://news.test/{n:04d}",
                     "title": f"{place}: {topic} (report {n})", "source": "news.test",
                     "published": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
                     "text": f"Report {n} from {place}.\n\n" + "\n\n".join(paragraphs)})
    return rows


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


class ChromaServer:
    """A real `chroma run` process on a loopback port; can be killed and started again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "chroma"), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.process.returncode}")
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"chroma run did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-request, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def stop_process(process: subprocess.Popen[str]) -> None:
    """Make sure a started process is gone when a test ends, whatever happened."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


_PROGRESS = re.compile(r"(\d+)/(\d+) \[")


class OutputWatcher:
    """Reads a running process's stderr as it comes (tqdm redraws with '\\r', not lines)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.process = process
        self._fd = process.stderr.fileno()
        self.text = ""

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> bool:
        """Read until ``predicate(text so far)`` holds (True) or the process ends (False)."""
        deadline = time.monotonic() + timeout
        poller = select.poll()  # not select.select: a long test run's descriptors pass 1024
        poller.register(self._fd, select.POLLIN | select.POLLHUP)
        while time.monotonic() < deadline:
            if predicate(self.text):
                return True
            if poller.poll(50):
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    return predicate(self.text)
                self.text += chunk.decode("utf-8", errors="replace")
        raise TimeoutError(f"no match within {timeout} s; stderr so far: {self.text[-500:]}")

    def embedded(self) -> int:
        """Passages the progress bar last reported as embedded."""
        found = _PROGRESS.findall(self.text)
        return int(found[-1][0]) if found else 0

    def progress(self, bar: str) -> int:
        """What the progress bar whose label starts with ``bar`` last reported as done
        ("searchable": articles stored, "embedding": passages embedded)."""
        found = re.findall(rf"{re.escape(bar)}[^:\r\n]*:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[",
                           self.text)
        return int(found[-1][0]) if found else 0


def probe_store(data_dir: Path, collection: str = "articles") -> dict[str, dict[str, int]]:
    """Catalog passage counts and stored passage counts per article, read by a new process."""
    done = subprocess.run([sys.executable, "-m", "tests.store_probe", str(data_dir), collection],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    probed: dict[str, dict[str, int]] = json.loads(done.stdout)
    return probed


class RagServe:
    """`rag serve` in a process of its own on a free loopback port, as a user starts it."""

    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = rag_env(data_dir, **env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> RagServe:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "rag"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/api/health", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"rag serve did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def gradio_call(base: str, api_name: str, data: list[object],
                client: httpx.Client | None = None) -> dict[str, object]:
    """Call a chat event the way the page does: join Gradio's queue, read its event stream
    until the call completes; returns the completion message."""
    http = client or httpx.Client(timeout=120)
    config = http.get(f"{base}/config").json()
    index, dependency = next((i, d) for i, d in enumerate(config["dependencies"])
                             if d.get("api_name") == api_name)
    session = os.urandom(6).hex()
    joined = http.post(f"{base}/gradio_api/queue/join", json={
        "data": data, "fn_index": index, "session_hash": session, "event_data": None,
        "trigger_id": dependency["targets"][0][0]})
    assert joined.status_code == 200, joined.text
    with http.stream("GET", f"{base}/gradio_api/queue/data",
                     params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message: dict[str, object] = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the chat call never completed")


def file_value(path: str, name: str = "") -> dict[str, object]:
    """A Gradio file value naming ``path`` (what a client sends after an upload)."""
    return {"path": path, "orig_name": name or Path(path).name,
            "meta": {"_type": "gradio.FileData"}}
