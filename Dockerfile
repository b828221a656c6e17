# syntax=docker/dockerfile:1
# The pipeline as an image, for deploy/k8s and any container host. Two targets:
#
#   docker build --target cpu  -t genre-pipeline:cpu  .    # ONNX Runtime's CPU (and WebGPU) providers
#   docker build --target cuda -t genre-pipeline:cuda .    # + the CUDA 12 provider, on NVIDIA's CUDA/cuDNN runtime
#
# Multi-stage: dependencies are installed by the lockfile and the code compiled in a build stage;
# the runtime stages carry node_modules without dev dependencies, dist/ and the repository's
# configs and models, and run as an unprivileged user. Base images are pinned to exact versions
# (add `@sha256:...` digests from `docker buildx imagetools inspect <image>` to pin them byte for byte).
ARG NODE_VERSION=22.12.0
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json Makefile ./
# The CPU binaries ship in onnxruntime-node's npm package: its install script downloads nothing.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY types types
COPY pipeline pipeline
COPY stages stages
COPY scripts scripts
COPY test test
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/test

# The CUDA 12 provider is not in the npm package: onnxruntime-node's install script fetches it
# (network at image build time; the running container downloads nothing).
FROM build AS build-cuda
RUN cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js

FROM node:${NODE_VERSION}-bookworm-slim AS cpu
# make drives the stages; libvulkan1 is the loader the WebGPU provider needs on a GPU host.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make libvulkan1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 pipeline
WORKDIR /app
COPY --chown=pipeline:pipeline Makefile package.json package-lock.json tsconfig.json ./
COPY --chown=pipeline:pipeline configs configs
COPY --chown=pipeline:pipeline models models
# The sources too (make's rules name them, e.g. the demo data's generator); dist/.built, touched
# below, is newer, so nothing is compiled in the container.
COPY --chown=pipeline:pipeline types types
COPY --chown=pipeline:pipeline pipeline pipeline
COPY --chown=pipeline:pipeline stages stages
COPY --chown=pipeline:pipeline scripts scripts
COPY --from=build --chown=pipeline:pipeline /app/node_modules node_modules
COPY --from=build --chown=pipeline:pipeline /app/dist dist
# Built: make's install and build steps are up to date, so `make all` in the container only runs stages.
RUN touch "node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)-skip" dist/.built && chown pipeline:pipeline node_modules/.installed-* dist/.built
ENV PIPELINE_CACHE=/cache NODE_ENV=production
RUN mkdir -p /cache && chown pipeline:pipeline /cache
USER pipeline
CMD ["make", "all"]

FROM ${CUDA_IMAGE} AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends make libvulkan1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Node from the same pinned image the build used: one runtime, one ABI for the native addons.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN useradd --create-home --uid 10001 pipeline
WORKDIR /app
COPY --chown=pipeline:pipeline Makefile package.json package-lock.json tsconfig.json ./
COPY --chown=pipeline:pipeline configs configs
COPY --chown=pipeline:pipeline models models
# The sources too (make's rules name them, e.g. the demo data's generator); dist/.built, touched
# below, is newer, so nothing is compiled in the container.
COPY --chown=pipeline:pipeline types types
COPY --chown=pipeline:pipeline pipeline pipeline
COPY --chown=pipeline:pipeline stages stages
COPY --chown=pipeline:pipeline scripts scripts
COPY --from=build-cuda --chown=pipeline:pipeline /app/node_modules node_modules
COPY --from=build-cuda --chown=pipeline:pipeline /app/dist dist
RUN touch "node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)-skip" dist/.built && chown pipeline:pipeline node_modules/.installed-* dist/.built
ENV PIPELINE_CACHE=/cache NODE_ENV=production
RUN mkdir -p /cache && chown pipeline:pipeline /cache
USER pipeline
CMD ["make", "all"]
