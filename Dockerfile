# source-circleci: the Airbyte source image. Build: `npm run docker:build` (tags source-circleci:dev
# and source-circleci:<version>) or `docker build -t source-circleci:dev .`
#
# The version below is package.json's: `node scripts/sync-version.mjs` rewrites the LABELs and
# metadata.yaml from it, and test/version-drift.test.ts fails when they disagree.

# ---- build: every dependency, compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/gen-types.mjs ./scripts/gen-types.mjs
COPY schemas ./schemas
COPY spec.json ./
COPY src ./src
RUN npm run build:dist

# ---- deps: the production dependencies alone, installed from the lock file ----
FROM node:24-bookworm-slim AS deps
WORKDIR /deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime: production dependencies and the built code, nothing else ----
FROM node:24-bookworm-slim
LABEL io.airbyte.name="source-circleci"
LABEL io.airbyte.version="0.1.0"
LABEL org.opencontainers.image.title="source-circleci" \
      org.opencontainers.image.description="Airbyte source for CircleCI API v2: pipelines, workflows and jobs" \
      org.opencontainers.image.licenses="Apache-2.0"

# Airbyte's contract: a non-root user named airbyte, and /airbyte existing and writable by it
# (the platform mounts config and catalog files there). The code itself stays root-owned.
RUN groupadd --system airbyte \
 && useradd --system --gid airbyte --home-dir /airbyte --shell /usr/sbin/nologin airbyte \
 && mkdir -p /airbyte/integration_code \
 && chown airbyte:airbyte /airbyte

WORKDIR /airbyte/integration_code
COPY --from=build /build/package.json ./
COPY --from=deps /deps/node_modules ./node_modules
COPY --from=build /build/dist ./dist
COPY --from=build /build/schemas ./schemas
COPY --from=build /build/spec.json ./

ENV NODE_ENV=production
# The entrypoint is the executable CLI itself (#!/usr/bin/env node): absolute, one word, and the
# same string as AIRBYTE_ENTRYPOINT. Node runs as PID 1 and handles SIGTERM (docker stop) itself.
ENV AIRBYTE_ENTRYPOINT="/airbyte/integration_code/dist/cli/airbyte.js"
ENTRYPOINT ["/airbyte/integration_code/dist/cli/airbyte.js"]
USER airbyte
