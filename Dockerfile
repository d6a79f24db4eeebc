# syntax=docker/dockerfile:1
# pg-prefaulter sidecar image.
#   docker build --build-arg SOURCE_URL="$(git remote get-url origin)" -t pg-prefaulter:0.1.0 .
# Runs as uid 101 / gid 103 (Spilo's postgres user): PGDATA is mode 0700 and
# owned by postgres, so the sidecar must be that uid to read it.
# See docs/kubernetes.md.

# Node.js 26 "Lithium", the Active LTS line (Active LTS since 2026-10-28,
# end of life 2029-04-30); Node 20 reached end of life on 2026-04-30.
# Pinned by digest, so a rebuild gets the same base until the pin is bumped.
# CI runs the test suite on this major too (.ci/run, NODE_LTS_VERSION).
# To bump (docs/kubernetes.md, "Bumping the base image"):
#   docker buildx imagetools inspect node:26-bookworm-slim   # the index digest
# then replace the digest below, set NODE_LTS_VERSION in .ci/run to the
# `node --version` of that image, and run .ci/run.
# This digest was taken from public Dockerfiles that pin node:26-bookworm-slim
# (no registry was reachable where it was written): verify it with the
# command above before publishing an image.
ARG NODE_IMAGE=node:26-bookworm-slim@sha256:cd565714d4da3e84bfd341e31448f81d47c6362198f152345297c9c1154e6341
# Where the source lives (e.g. --build-arg SOURCE_URL="$(git remote get-url origin)").
ARG SOURCE_URL=""

# --- build: compile TypeScript to dist/ -------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Only the compiler is needed here. The other devDependencies are for tests
# (pg13..pg18 are ~350 MB of x64-only PostgreSQL binaries), so drop them
# before installing; versions still come from package-lock.json.
RUN node -e "const fs=require('fs');const p=JSON.parse(fs.readFileSync('package.json','utf8'));const keep=['typescript','@types/node'];p.devDependencies=Object.fromEntries(Object.entries(p.devDependencies||{}).filter(([k])=>keep.includes(k)));fs.writeFileSync('package.json',JSON.stringify(p,null,2))" \
 && npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production node_modules only --------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG SOURCE_URL
LABEL org.opencontainers.image.title="pg-prefaulter" \
      org.opencontainers.image.description="Sidecar that cuts PostgreSQL replica apply lag by reading the WAL ahead of replay and prefaulting the pages it touches" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/kubernetes.md" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.base.name="node:26-bookworm-slim"
# HOME=/tmp: nothing is written outside /tmp, so readOnlyRootFilesystem works
# (mount an emptyDir at /tmp). UV_THREADPOOL_SIZE matches the default
# io_concurrency (64): every concurrent pread holds one libuv pool thread.
ENV NODE_ENV=production \
    HOME=/tmp \
    UV_THREADPOOL_SIZE=64
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# Node's module compile cache (Node 22.1+), filled here as the runtime user
# (Node keeps it per uid and checks each entry against the file): a new pod's
# sidecar compiles less before its first recovery hint (docs/benchmarks.md,
# crash modes, session 5). A read-only root filesystem only stops updates.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
RUN mkdir /app/.node-compile-cache && chown 101:103 /app/.node-compile-cache
USER 101:103
RUN node /app/bin/fill-compile-cache.js
EXPOSE 9441
STOPSIGNAL SIGTERM
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz on port 9441.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["run"]
