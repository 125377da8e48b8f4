"""llama.cpp's own OpenAI-compatible server, from the prebuilt ``xllamacpp`` wheel, for the
language-model tests: ``python -m tests.llm_server --model M.gguf --port P --api-key K``.

The wheel carries llama.cpp's C++ server compiled for x86_64 (MIT), so the tests' model
server needs no compiler; the in-process backend (``RAG_LLM_MODEL_PATH``) runs the same
library inside the app. Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--alias", default="local-model")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.ctx
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.model_alias = {args.alias}
    if args.api_key:
        params.api_keys = [args.api_key]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    stop.wait()
    del server  # stops llama.cpp's loop and frees the model


if __name__ == "__main__":
    main()
