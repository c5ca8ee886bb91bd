# One image for every process of the payment service; the command picks it:
#   docker run foodies-payment consumer | relay | admin-api | migrate | outbox-replay --help

# --- build: all dependencies, compile every workspace to dist/
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY db/package.json db/
COPY packages/domain/package.json packages/domain/
COPY packages/platform/package.json packages/platform/
COPY packages/gateway/package.json packages/gateway/
COPY packages/testkit/package.json packages/testkit/
COPY apps/consumer/package.json apps/consumer/
COPY apps/outbox-relay/package.json apps/outbox-relay/
COPY apps/admin-api/package.json apps/admin-api/
COPY apps/migrate/package.json apps/migrate/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json ./
COPY db db
COPY packages packages
COPY apps apps
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# --- run: production dependencies and compiled code only, as the unprivileged node user
FROM node:24-bookworm-slim AS run
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
# The V8 heap limit the apps run with (npm run bench measures them with the same value).
# The live heap is ~20 MB; without a limit V8 sizes its garbage allowance from the host's
# memory and RSS wanders. 256 MB stays below the k8s memory limits (384Mi) with room for the
# young generation and code, so V8 collects before the kernel would kill the pod. Node 24's V8
# sizes the young generation from the host's memory too (RSS 210 MB in npm run bench against
# 128 MB with a 16 MB semi-space, at the same throughput), so that is bounded as well. Override
# per deployment through NODE_OPTIONS.
ENV NODE_OPTIONS="--max-old-space-size=256 --max-semi-space-size=16"
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/db/package.json db/
COPY --from=build /app/db/dist db/dist
COPY --from=build /app/db/migrations db/migrations
COPY --from=build /app/packages/domain/package.json packages/domain/
COPY --from=build /app/packages/domain/dist packages/domain/dist
COPY --from=build /app/packages/platform/package.json packages/platform/
COPY --from=build /app/packages/platform/dist packages/platform/dist
COPY --from=build /app/packages/gateway/package.json packages/gateway/
COPY --from=build /app/packages/gateway/dist packages/gateway/dist
COPY --from=build /app/apps/consumer/package.json apps/consumer/
COPY --from=build /app/apps/consumer/dist apps/consumer/dist
COPY --from=build /app/apps/outbox-relay/package.json apps/outbox-relay/
COPY --from=build /app/apps/outbox-relay/dist apps/outbox-relay/dist
COPY --from=build /app/apps/admin-api/package.json apps/admin-api/
COPY --from=build /app/apps/admin-api/dist apps/admin-api/dist
COPY --from=build /app/apps/migrate/package.json apps/migrate/
COPY --from=build /app/apps/migrate/dist apps/migrate/dist
COPY bin/payment-service /usr/local/bin/payment-service
USER node
EXPOSE 8085 8086 8087
# tini is PID 1: it forwards SIGTERM to node and reaps zombies; node handles SIGTERM itself
# (graceful shutdown within SHUTDOWN_TIMEOUT_MS; a second signal forces exit).
ENTRYPOINT ["/usr/bin/tini", "--", "payment-service"]
CMD ["consumer"]
