# pgx-loop CDS Hooks service.
#   docker build -t pgx-loop .
#   docker run -p 8080:8080 -v pgx-var:/var/lib/pgx-loop \
#     -v "$PWD/issuers.yaml:/etc/pgx-loop/issuers.yaml:ro" \
#     -e PGX_LOOP_TRUSTED_ISSUERS=/etc/pgx-loop/issuers.yaml -e PGX_LOOP_PUBLIC_BASE_URL=https://cds.example.org \
#     pgx-loop serve --host 0.0.0.0 --port 8080 --workers 2
# Authentication is on: without trusted issuers and the public base URL the service refuses to start
# (README, Authentication). Mounts (README, Production):
#   /app/rules          the gene and rule files; mount your own (read-only) to edit without rebuilding
#   /var/lib/pgx-loop   event log, pseudonymisation key, analytics database, strengths, reports: a persistent volume
# Load the site's data with e.g.
#   docker run -v pgx-var:/var/lib/pgx-loop -v /data/omop:/omop pgx-loop load-omop /omop

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY hooks ./hooks
COPY analytics ./analytics
COPY pgx_loop ./pgx_loop
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PGX_LOOP_RULES_DIR=/app/rules \
    PGX_LOOP_VAR_DIR=/var/lib/pgx-loop
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /app pgx \
 && mkdir -p /var/lib/pgx-loop && chown pgx /var/lib/pgx-loop
WORKDIR /app
COPY rules ./rules
COPY examples ./examples
USER pgx
VOLUME ["/var/lib/pgx-loop"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["pgx-loop"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
