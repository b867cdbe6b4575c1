# lunglesion container: CPU or CUDA PyTorch, non-root user, `lunglesion` as entry point.
#
#   CPU:  docker build -t lunglesion:cpu .
#   CUDA: docker build -t lunglesion:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#         docker run --gpus all -v /data:/data lunglesion:cuda run /data/dicom --out /data/out --device cuda
#
# The model weights are part of the package (segmentation/weights); nothing is downloaded at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Where torch comes from decides CPU vs CUDA: the CPU or a CUDA wheel index of pytorch.org.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Extra pip arguments for the torch install, e.g. "--find-links /wheels" for a folder holding the torch
# wheel (add --no-index only if the folder holds torch's dependencies too).
ARG TORCH_PIP_ARGS=""
# Extra pip arguments for the project install, e.g. "--index-url https://mirror.example/simple" behind a
# hospital proxy (a CA bundle mounted at build time goes in with --cert).
ARG PIP_ARGS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A virtual environment works the same on python:3.11-slim and on a plain Debian base with python3-venv;
# torch goes in first, from the chosen index, so the project install does not pull another build.
# hadolint ignore=SC2086,DL3013
RUN python3 -m venv /opt/venv \
    && pip install --index-url "${TORCH_INDEX_URL}" ${TORCH_PIP_ARGS} "torch==${TORCH_VERSION}"

WORKDIR /opt/lunglesion
COPY pyproject.toml README.md LICENSE ./
COPY configs ./configs
COPY pipeline ./pipeline
COPY segmentation ./segmentation
COPY metrics ./metrics
# Dependency versions are pinned to ranges in pyproject.toml (DL3013 cannot see them).
# hadolint ignore=SC2086,DL3013
RUN pip install ${PIP_ARGS} . && lunglesion --version

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin lunglesion
USER 10001
WORKDIR /home/lunglesion

ENTRYPOINT ["lunglesion"]
CMD ["--help"]
