# One image for the API, the worker and migrations; the command picks the role.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workflows workflows
COPY activities activities
COPY api api
COPY models models
COPY rules rules
COPY devstack devstack
COPY migrations migrations
COPY worker.py settings.py cli.py observability.py clients.py vocabulary.py tracing.py ./
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels "$(ls /wheels/awfdrs-*.whl)"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home awfdrs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels awfdrs && rm -rf /wheels
USER awfdrs
ENV PYTHONUNBUFFERED=1 AWFDRS_ENV=production AWFDRS_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["python", "-m", "api"]
