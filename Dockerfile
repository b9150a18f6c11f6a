# campaign-sync: `serve` by default; `docker run IMAGE sync` for a one-shot pass.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CAMPAIGN_SYNC_METRICS_HOST=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY campaign_sync ./campaign_sync
COPY migrations ./migrations
RUN pip install . \
    && useradd --create-home --uid 10001 campaign-sync

USER campaign-sync
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/livez').status != 200)"
ENTRYPOINT ["campaign-sync"]
CMD ["serve"]
