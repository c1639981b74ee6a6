# The Registrar image: every service is `registrar <command>` in it (see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY domain ./domain
COPY services ./services
COPY projections ./projections
RUN pip install --no-cache-dir . && useradd --system registrar
USER registrar
ENV REGISTRAR_HOST=0.0.0.0 REGISTRAR_PORT=8080
EXPOSE 8080
ENTRYPOINT ["registrar"]
CMD ["serve"]
