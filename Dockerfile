# syntax=docker/dockerfile:1
# pg-prefaulter sidecar image.
#   docker build -t pg-prefaulter:0.1.0 .
# Runs as uid 101 / gid 103 (Spilo's postgres user): PGDATA is mode 0700 and
# owned by postgres, so the sidecar must be that uid to read it.
# See docs/kubernetes.md.

ARG NODE_IMAGE=node:20-bookworm-slim

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
LABEL org.opencontainers.image.title="pg-prefaulter" \
      org.opencontainers.image.description="Sidecar that cuts PostgreSQL replica apply lag by reading the WAL ahead of replay and prefaulting the pages it touches" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/kubernetes.md"
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
USER 101:103
EXPOSE 9441
STOPSIGNAL SIGTERM
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz on port 9441.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["run"]
