# The gateway image that iac/ deploys on ECS Fargate. It carries regions.yaml (limits and
# topology) and takes its addresses and secrets from CHORUS_* variables
# (region/deployment.py). Build from the repository root:
#   docker build -t <registry>/chorus-gateway:<tag> .

# -- the browser SDK and the pages, built as scripts/setup.sh builds them ---------------------
# Node and npm are Debian's packages (the distribution python:3.11-slim is built on); npm ci
# installs exactly web/package-lock.json. Only the sources go in, never a local web/dist or
# node_modules, so the image holds what the commit builds.
FROM debian:bookworm-slim AS web
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /web
COPY web/package.json web/package-lock.json ./
COPY web/sdk/package.json sdk/
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/sdk/tsconfig.json sdk/
COPY web/sdk/src sdk/src
COPY web/pages pages
# The SDK (web/sdk/dist), then the pages' scripts bundled with it into web/dist.
RUN npm run build

# -- the gateway ------------------------------------------------------------------------------
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY chorus chorus
COPY region region
COPY global_ global_
COPY chaos chaos
RUN pip install --no-cache-dir . && rm -rf /root/.cache
# What every gateway serves to browsers (region/web.py reads web/ beside region/, here
# /app/web): the pages, and the built scripts and styles that carry the SDK.
COPY web/pages/viewer.html web/pages/dashboard.html web/pages/
COPY --from=web /web/dist web/dist
COPY regions.yaml ./
USER 10001
CMD ["python", "-m", "region.gateway", "--config", "/app/regions.yaml", "--from-env"]
