# Agentina control plane image: the API and the worker run from the same image
# (`agentina serve` / `agentina worker`). TypeScript runs through tsx, as in a checkout.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    AGENTINA_DATA_DIR=/var/lib/agentina \
    AGENTINA_KEYS_DIR=/var/lib/agentina/keys
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN useradd --system --uid 10001 --home /var/lib/agentina agentina \
 && mkdir -p /var/lib/agentina/keys && chown -R agentina /var/lib/agentina && chmod 700 /var/lib/agentina/keys
USER agentina
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/agentina.js"]
CMD ["serve"]
