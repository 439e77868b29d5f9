# syntax=docker/dockerfile:1
# One image for api, worker and the one-shot jobs (migrate, softhsm-init); docker-compose.yml picks the command.

# ---- build: full dev dependencies, tsc to dist/, prebuilt workflow bundle -------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Toolchain for native modules without a prebuilt binary for this platform (pkcs11js under graphene-pk11).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# postinstall applies patches/ (patch-package): a known postgres.js crash on a closed socket.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
# `npm run build` = tsc -p tsconfig.json (to dist/) + worker/build-bundle.ts (prebuilt workflow bundle).
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 openssl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# NODE_OPTIONS: single-DES / RC2 SCEP clients (old MDM agents, certmonger defaults) need OpenSSL's legacy provider.
# API_HOST: listen on all interfaces inside the container (the app's default is 127.0.0.1).
# PKI_ENV=production: refuses to start with a development setting (README "Secure by default").
# PKI_CONFIG: mount your profiles file there; config/pki.production.example.json shows one.
ENV NODE_ENV=production \
    PKI_ENV=production \
    PKI_CONFIG=/etc/device-pki/pki.json \
    NODE_OPTIONS=--openssl-legacy-provider \
    API_HOST=0.0.0.0 \
    API_PORT=8080 \
    PKI_DATA_DIR=/var/lib/device-pki \
    SOFTHSM_DIR=/var/lib/softhsm \
    SOFTHSM2_CONF=/var/lib/softhsm/softhsm2.conf \
    SOFTHSM2_LIB=/usr/lib/softhsm/libsofthsm2.so
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json /app/package-lock.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=build --chown=root:root /app/config ./config
COPY --from=build --chown=root:root /app/db/migrations ./db/migrations
# Writable state lives in volumes owned by the unprivileged `node` user (uid 1000, from the base image);
# a fresh named volume inherits this ownership on first mount.
# One directory per token (hsm/softhsm.ts places each under its label), each a volume of its own in
# docker-compose.yml so a service mounts only the tokens of its job; the conf is baked in so a service
# that does not provision finds it.
RUN mkdir -p /var/lib/softhsm/tokens/device-pki-ra /var/lib/softhsm/tokens/device-pki-ca \
      /var/lib/softhsm/tokens/device-pki-data /var/lib/device-pki \
 && printf 'directories.tokendir = /var/lib/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
      > /var/lib/softhsm/softhsm2.conf \
 && chown -R node:node /var/lib/softhsm /var/lib/device-pki
USER node
EXPOSE 8080
# tini: PID 1 that forwards SIGTERM, so workers drain in-flight activities (shutdownGraceTime) on `docker stop`.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/api/main.js"]
