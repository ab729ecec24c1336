# syntax=docker/dockerfile:1
#
# medattr on a CUDA PyTorch runtime image (see docs/deploy.md):
#
#   docker build -t medattr .
#   docker run --rm --gpus all -v /data:/data medattr \
#       explain /data/study --model builtin:phantom --out /data/out
#
# The base image's torch (a CUDA build) is kept as it is: medattr is installed under a pip
# constraint generated from the torch, torchvision, torchaudio and triton the image already has,
# and the build fails if any of them changed. The image runs as an unprivileged user.
#
# Build arguments:
#   BASE_IMAGE      a CUDA PyTorch image (default below); any image with python, pip and torch
#   MEDATTR_EXTRAS  optional dependency groups to install, e.g. "deploy" for the MONAI Deploy
#                   App SDK operator and example app
#   MEDATTR_VERSION the version written into the image labels
#   MEDATTR_UID, MEDATTR_GID  numeric ids of the unprivileged user

ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime

FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG MEDATTR_EXTRAS=""
ARG MEDATTR_VERSION="unknown"
ARG MEDATTR_UID=1000
ARG MEDATTR_GID=1000

LABEL org.opencontainers.image.title="medattr" \
      org.opencontainers.image.description="Counterfactual path attribution (Integrated Gradients and related methods) for 3D CT and MR" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${MEDATTR_VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    MEDATTR_BUNDLES=/opt/medattr/bundles

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The package is installed from a copy of the source (not editable), which is removed afterwards.
COPY pyproject.toml README.md /tmp/medattr-src/
COPY medattr/ /tmp/medattr-src/medattr/

# keep-base.txt pins the framework packages of the base image; pip may add packages around them
# but never replace them, and the final diff proves it.
RUN python -m pip list --format=freeze \
        | grep -iE '^(torch|torchvision|torchaudio|triton)==' > /tmp/keep-base.txt \
    && grep -qi '^torch==' /tmp/keep-base.txt \
    && python -m pip install --no-cache-dir --constraint /tmp/keep-base.txt \
        "/tmp/medattr-src${MEDATTR_EXTRAS:+[${MEDATTR_EXTRAS}]}" \
    && python -m pip list --format=freeze \
        | grep -iE '^(torch|torchvision|torchaudio|triton)==' | diff /tmp/keep-base.txt - \
    && rm -rf /tmp/medattr-src /tmp/keep-base.txt \
    && medattr --version

# MONAI bundles and the MONAI Deploy example app, read-only for the runtime user.
COPY bundles/ /opt/medattr/bundles/
COPY examples/deploy_app/ /opt/medattr/examples/deploy_app/

# An existing group or user with these ids (e.g. "ubuntu" in Ubuntu 24.04 images) is reused.
RUN if ! getent group "${MEDATTR_GID}" > /dev/null; then \
        groupadd --gid "${MEDATTR_GID}" medattr; \
    fi \
    && if ! getent passwd "${MEDATTR_UID}" > /dev/null; then \
        useradd --uid "${MEDATTR_UID}" --gid "${MEDATTR_GID}" --create-home \
            --shell /usr/sbin/nologin medattr; \
    fi \
    && mkdir -p /data \
    && chown "${MEDATTR_UID}:${MEDATTR_GID}" /data

WORKDIR /data
USER ${MEDATTR_UID}:${MEDATTR_GID}

ENTRYPOINT ["medattr"]
CMD ["--help"]
