# The Registrar image: every service is `registrar <command>` in it (see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY domain ./domain
COPY services ./services
COPY projections ./projections
# REGISTRAR_HOME holds what a server keeps on disk (artifacts when no S3 is configured, the
# webhook-secret key file): writable by the service user, a volume in compose.yaml.
RUN pip install --no-cache-dir . && useradd --system registrar \
    && mkdir -p /var/lib/registrar && chown registrar /var/lib/registrar
USER registrar
ENV REGISTRAR_HOST=0.0.0.0 REGISTRAR_PORT=8080 REGISTRAR_HOME=/var/lib/registrar
EXPOSE 8080
ENTRYPOINT ["registrar"]
CMD ["serve"]
