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
COPY tsconfig.json asconfig.json ./
COPY types types
COPY pipeline pipeline
COPY stages stages
COPY scripts scripts
COPY test test
COPY configs configs
COPY models models
# /app becomes the runtime's tree: compiled code without the tests, no dev dependencies. The
# sources stay (make's rules name them, e.g. the demo data's generator); the stamps touched
# last make make's install and build steps up to date, so `make all` in the container only runs stages.
RUN npx tsc -p tsconfig.json \
 && npm run build:wasm \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf test dist/test \
 && touch "node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)-skip" dist/.built

# The CUDA 12 provider is not in the npm package: onnxruntime-node's install script fetches it
# (network at image build time; the running container downloads nothing).
FROM build AS build-cuda
RUN cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js

FROM node:${NODE_VERSION}-bookworm-slim AS cpu
# make drives the stages; libvulkan1 is the loader the WebGPU provider needs on a GPU host.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make libvulkan1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 pipeline \
 && mkdir -p /cache && chown pipeline:pipeline /cache
COPY --from=build --chown=pipeline:pipeline /app /app
WORKDIR /app
ENV PIPELINE_CACHE=/cache NODE_ENV=production
USER pipeline
CMD ["make", "all"]

FROM ${CUDA_IMAGE} AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends make libvulkan1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 pipeline \
 && mkdir -p /cache && chown pipeline:pipeline /cache
# Node from the same pinned image the build used: one runtime, one ABI for the native addons.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build-cuda --chown=pipeline:pipeline /app /app
WORKDIR /app
ENV PIPELINE_CACHE=/cache NODE_ENV=production
USER pipeline
CMD ["make", "all"]
