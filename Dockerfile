# First cut: builds and runs the connector; the Docker issue completes it (non-root user, labels from metadata.yaml).
FROM node:20-bookworm-slim AS build
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY schemas ./schemas
COPY spec.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /airbyte/integration_code
COPY --from=build /build/package.json ./
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist ./dist
COPY --from=build /build/schemas ./schemas
COPY --from=build /build/spec.json ./
ENV AIRBYTE_ENTRYPOINT="node /airbyte/integration_code/dist/cli/airbyte.js"
ENTRYPOINT ["node", "/airbyte/integration_code/dist/cli/airbyte.js"]
