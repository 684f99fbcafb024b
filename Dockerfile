# One image for the API, the worker and migrations; the command picks the role. Its
# dependencies are installed from requirements/prod.txt, every file checked against its hash;
# the embedded development servers (the `devstack` extra) stay out.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY workflows workflows
COPY activities activities
COPY api api
COPY models models
COPY rules rules
COPY devstack devstack
COPY migrations migrations
COPY worker.py settings.py cli.py observability.py clients.py vocabulary.py tracing.py ./
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home awfdrs
COPY requirements/prod.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --no-deps /wheels/awfdrs-*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1 AWFDRS_ENV=production AWFDRS_API_HOST=0.0.0.0
EXPOSE 8000
# The API's liveness; the worker and migrate services override it (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=2)"]
CMD ["python", "-m", "api"]
