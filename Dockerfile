# syntax=docker/dockerfile:1
# Build stage: the same install steps as `make install`.
FROM python:3.11-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock pyproject.toml ./
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir --upgrade pip \
    && /app/.venv/bin/pip install --no-cache-dir -r requirements.lock
COPY face/ face/
RUN /app/.venv/bin/python -m face.weights install

# Runtime stage: slim, non-root.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 bot
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --chown=bot:bot . .
ENV PATH=/app/.venv/bin:$PATH BOT_DATA_DIR=/app/var HOST=0.0.0.0 PORT=8080 \
    DEEPFACE_HOME=/app/.venv/deepface PYTHONUNBUFFERED=1
RUN mkdir -p /app/var && chown bot:bot /app/var \
    && /app/.venv/bin/python -m babel.messages.frontend compile --directory=/app/locale
USER bot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["python", "-m", "bot", "serve"]
