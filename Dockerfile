# Kith: one image for the web and worker processes.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 KITH_DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml README.md ./
COPY server ./server
COPY migrations ./migrations
COPY web ./web
# Editable, so `kith migrate` finds migrations/ beside the package.
RUN pip install --no-cache-dir -e . && useradd --system --home /data kith && mkdir -p /data && chown kith /data

USER kith
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["sh", "-c", "kith migrate && kith serve --host 0.0.0.0 --port 8000"]
