# CallFS image: build on the full toolchain, run on a slim base as a non-root user.
#   docker build -t callfs:local .
# compose/, swarm/ and k8s/ use this image.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    CALLFS_SERVER__LISTEN_ADDR=:8443 \
    CALLFS_BACKEND__LOCALFS_ROOT_PATH=/var/lib/callfs/data \
    CALLFS_METADATA_STORE__SQLITE_PATH=/var/lib/callfs/callfs.sqlite3 \
    HEALTHCHECK_URL=http://127.0.0.1:8443/health
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY docker-entrypoint.sh /usr/local/bin/callfs-entrypoint
RUN chmod 0755 /usr/local/bin/callfs-entrypoint \
 && mkdir -p /var/lib/callfs/data /etc/callfs \
 && chown -R node:node /var/lib/callfs
# The image's own unprivileged user (uid 1000).
USER node
VOLUME /var/lib/callfs
EXPOSE 8443
# No curl in slim images: node itself probes /health (set HEALTHCHECK_URL when
# listen_addr or the protocol differ).
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["callfs-entrypoint"]
CMD ["server"]
