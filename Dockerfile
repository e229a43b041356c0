# The Meowstik image: the API by default; docker-compose.yml runs the workers from it too.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEOWSTIK_API_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin meowstik

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY meowstik ./meowstik
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY api ./api
COPY cli ./cli
# The versions CI tested (constraints.txt, `make constraints`); no `embedded` extra: Redis is
# the redis service (MEOWSTIK_REDIS_URL), so the image carries no redis-server of its own
RUN pip install -c constraints.txt ".[flower]" && rm -rf /src

USER meowstik
WORKDIR /home/meowstik
EXPOSE 5000 5555

# The same command `meowstik up` builds (cli.up.api_command), bound to every interface.
CMD ["python", "-m", "gunicorn", "--bind", "0.0.0.0:5000", "--workers", "2", "--worker-class", "gthread", "--threads", "8", "--graceful-timeout", "10", "--config", "python:api.gunicorn_conf", "api:create_app()"]
