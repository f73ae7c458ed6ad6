# Demo upstream app (deploy/app/main.py). Build from the repository root:
#
#   docker build -f deploy/app.Dockerfile -t portcullis-demo-app .
#
# Unless PORTCULLIS_JWKS_URL makes it verify portcullis' signed assertions, it
# trusts X-Auth-* headers, so never publish its port: run it on a private
# network that only portcullis reaches (see deploy/compose.yaml), and set
# FORWARDED_ALLOW_IPS to portcullis' address alone.

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FORWARDED_ALLOW_IPS=127.0.0.1
WORKDIR /app
COPY deploy/app/requirements.txt .
# The portcullis package (python/): the signed-in user from the assertion.
COPY python /tmp/portcullis-python
RUN pip install -r requirements.txt /tmp/portcullis-python && rm -rf /tmp/portcullis-python
COPY deploy/app/main.py .
RUN useradd --system --uid 10002 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin app
USER app
EXPOSE 8000
# --proxy-headers makes uvicorn believe X-Forwarded-For / -Proto, and only from
# the addresses in FORWARDED_ALLOW_IPS: set it to portcullis' address alone.
CMD ["sh", "-c", "exec uvicorn main:app --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips \"$FORWARDED_ALLOW_IPS\""]
