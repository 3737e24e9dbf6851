# The gateway image that iac/ deploys on ECS Fargate. It carries regions.yaml (limits and
# topology) and takes its addresses and secrets from CHORUS_* variables
# (region/deployment.py). Build from the repository root:
#   docker build -t <registry>/chorus-gateway:<tag> .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY chorus chorus
COPY region region
COPY global_ global_
COPY chaos chaos
RUN pip install --no-cache-dir . && rm -rf /root/.cache
COPY regions.yaml ./
USER 10001
CMD ["python", "-m", "region.gateway", "--config", "/app/regions.yaml", "--from-env"]
