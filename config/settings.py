"""Signoff's settings: one file, read from the environment.

Production differs from the demo only by its environment. Unset, everything falls back to the
embedded default: an SQLite file in the project folder and background jobs run in-process.
"""

import datetime as dt
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (or SECRET_KEY_FILE), or DEBUG=true for a demo.")
    SECRET_KEY = "insecure-demo-key-set-SECRET_KEY-in-production"  # noqa: S105 - DEBUG only
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "audit",
    "capabilities",
    "reviews",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a login that locked its pair out into the
    # lockout page (see AXES_LOCKOUT_CALLABLE).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_PREPARED_STATEMENTS", default=True
):
    # Server-side binding lets psycopg prepare the statements a process repeats, which saves
    # PostgreSQL planning them on every call (audited decisions/s rise by a third, see bench/).
    # Set DATABASE_PREPARED_STATEMENTS=false behind a pooler in transaction mode that cannot
    # carry prepared statements (PgBouncer before 1.21).
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # BEGIN IMMEDIATE takes SQLite's write lock up front, so concurrent requests queue for it
    # (up to the timeout) instead of failing with "database is locked" half-way through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis --------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Background work --------------------------------------------------------------------------

# Jobs go through Django's tasks framework; SIGNOFF_WORKERS says where they run:
#   immediate  in the process that enqueues, right after its commit (the embedded default)
#   rq         on RQ workers (`manage.py rqworker`), queued in Redis: the one for production
#   celery     on Celery workers (`celery -A config worker`), through RabbitMQ or Redis
# TASKS_BACKEND, a backend's import path, overrides it. Periodic jobs (the sweeps, audit
# checkpoints: config/task_backends/periodic.py) need one scheduler beside the workers:
# `manage.py rqcron config.task_backends.rq_cron`, or `celery -A config beat`.
_TASK_BACKENDS = {
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
    "rq": "config.task_backends.rq.RQBackend",
    "celery": "django_tasks_celery.CeleryBackend",
}
SIGNOFF_WORKERS = env_str("SIGNOFF_WORKERS", "immediate").strip().lower()
if SIGNOFF_WORKERS not in _TASK_BACKENDS:
    raise ImproperlyConfigured(
        f"SIGNOFF_WORKERS must be one of {', '.join(_TASK_BACKENDS)}, not {SIGNOFF_WORKERS!r}."
    )
_tasks_backend = env_str("TASKS_BACKEND") or _TASK_BACKENDS[SIGNOFF_WORKERS]
# The broker queue that carries Signoff's jobs, and that its workers consume: give each
# deployment its own when several share a Redis or a RabbitMQ.
SIGNOFF_QUEUE = env_str("SIGNOFF_QUEUE", "signoff")
_tasks_options: dict[str, object] = {}
if _tasks_backend == _TASK_BACKENDS["rq"]:
    _tasks_options = {"QUEUE_NAMES": {"default": SIGNOFF_QUEUE}}
elif _tasks_backend == _TASK_BACKENDS["celery"]:
    _tasks_options = {"CELERY_APP": "config.celery.app"}
TASKS = {"default": {"BACKEND": _tasks_backend, "QUEUES": ["default"], "OPTIONS": _tasks_options}}

# RQ, through django-rq: the queue lives in REDIS_URL's Redis unless RQ_REDIS_URL names another.
RQ_REDIS_URL = env_str("RQ_REDIS_URL", REDIS_URL)
RQ_QUEUES = {SIGNOFF_QUEUE: {"URL": RQ_REDIS_URL}} if RQ_REDIS_URL else {}
# Enqueue when told: when to enqueue (after the commit, through the outbox) is decided by
# config/jobs.py and the outbox, not deferred again by django-rq.
RQ = {"COMMIT_MODE": "auto"}
if _tasks_backend == _TASK_BACKENDS["rq"]:
    if not RQ_REDIS_URL:
        raise ImproperlyConfigured("SIGNOFF_WORKERS=rq needs REDIS_URL (or RQ_REDIS_URL).")
    # For its commands: rqworker, rqcron, rqstats.
    INSTALLED_APPS.append("django_rq")
# Not its admin pages: any staff user could read every job's arguments and delete or requeue
# jobs there, beyond what capabilities/permissions.py allows. Operators use `manage.py rqstats`.
RQ_SHOW_ADMIN_LINK = False

# Celery: the broker is CELERY_BROKER_URL (amqp://user:password@host:5672/vhost for RabbitMQ),
# else REDIS_URL's Redis.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
if _tasks_backend == _TASK_BACKENDS["celery"] and not CELERY_BROKER_URL:
    raise ImproperlyConfigured("SIGNOFF_WORKERS=celery needs CELERY_BROKER_URL (or REDIS_URL).")
CELERY_TASK_DEFAULT_QUEUE = SIGNOFF_QUEUE
# A job is acknowledged once it has run, not when a worker takes it: the broker hands the job of
# a worker that died to another (jobs are safe to run twice), and a worker holds one at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # log through LOGGING below, like every other process
# Results are not needed: the outbox and each suggestion's execution record say how work went.
# Set CELERY_RESULT_BACKEND to keep them anyway (for Task.get_result).
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_RESULT_EXTENDED = True
if _tasks_backend == _TASK_BACKENDS["celery"] and not CELERY_RESULT_BACKEND:
    SILENCED_SYSTEM_CHECKS = ["django_tasks_celery.W001"]  # "no result backend": on purpose

# --- Authentication and sessions --------------------------------------------------------------

# django-axes comes first: it refuses a locked-out username and address before any backend
# checks the password (it logs nobody in itself). Single sign-on adds its backend below.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reviews:queue"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users have no permissions

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Password logins (django-axes, hooks in capabilities/lockout.py): SIGNOFF_LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address lock that pair out for
# SIGNOFF_LOGIN_COOLOFF_MINUTES (0: until an administrator runs `manage.py axes_reset_username`).
# Keyed on the pair, so nobody can lock a person out from everywhere by guessing at their name,
# and one shared address does not lock out everyone behind it.
AXES_FAILURE_LIMIT = env_int("SIGNOFF_LOGIN_FAILURE_LIMIT", 5)
_login_cooloff_minutes = env_int("SIGNOFF_LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = (
    dt.timedelta(minutes=_login_cooloff_minutes) if _login_cooloff_minutes > 0 else None
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Attempts during a lockout are refused unchecked and uncounted, so the retry time the lockout
# page states holds (and the lockout is recorded once); a guesser still gets at most
# AXES_FAILURE_LIMIT tries per cool-off.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "capabilities.lockout.lockout_response"
AXES_WHITELIST_CALLABLE = "capabilities.lockout.attempt_is_exempt"
AXES_CLIENT_IP_CALLABLE = "capabilities.lockout.client_ip_address"
# Behind a load balancer every request comes from its address. With N proxies in front that each
# append to X-Forwarded-For, the client is the Nth address from the right of that header; only
# set this when the application cannot be reached except through those proxies.
SIGNOFF_TRUSTED_PROXY_COUNT = env_int("SIGNOFF_TRUSTED_PROXY_COUNT", 0)

# Session cookies: out of reach of scripts, over HTTPS only unless DEBUG, and not sent with
# cross-site subrequests. Lax rather than Strict: the identity provider's redirect back to the
# single sign-on callback is a cross-site navigation that must carry the session. Every login
# gets a fresh session key (Django rotates it), so a session planted before login is worthless.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# A working day at most, and gone with the browser: reviewers may share machines.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response: the pages load only the project's own scripts,
# styles and images, run no inline script, style attribute or eval, and cannot be framed. The
# API docs page relaxes it for itself alone (reviews/api_urls.py).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- Single sign-on (OpenID Connect) ----------------------------------------------------------


def _role_map(name: str, value: str) -> dict[str, tuple[str, ...]]:
    """Parse "group=role,group=role" into {group: (role, ...)}, refusing unknown roles."""
    from capabilities.roles import ROLES  # plain data, no models: safe before setup

    role_map: dict[str, tuple[str, ...]] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        group, separator, role = (part.strip() for part in item.partition("="))
        if not separator or not group or role not in ROLES:
            raise ImproperlyConfigured(
                f"{name}: {item.strip()!r} is not group=role with a role among "
                f"{', '.join(sorted(ROLES))}."
            )
        role_map[group] = (*role_map.get(group, ()), role)
    return role_map


# Off unless OIDC_RP_CLIENT_ID is set. Then the provider's endpoints are required, its backend
# joins AUTHENTICATION_BACKENDS, /oidc/ is routed and the login page offers it (mozilla-django-
# oidc; the backend, which creates users and syncs their roles, is capabilities/sso.py).
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
SIGNOFF_SSO_ENABLED = bool(OIDC_RP_CLIENT_ID)
# The claim that lists a person's groups, and which roles each group gives, as
# "group=role,group=role" (a group may appear more than once). Only the roles named here are
# synced from the provider at every login; roles given by hand outside the map are left alone.
SIGNOFF_OIDC_GROUPS_CLAIM = env_str("SIGNOFF_OIDC_GROUPS_CLAIM", "groups")
SIGNOFF_OIDC_ROLE_MAP = _role_map("SIGNOFF_OIDC_ROLE_MAP", env_str("SIGNOFF_OIDC_ROLE_MAP"))
if SIGNOFF_SSO_ENABLED:
    OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
    OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
    _oidc_required = [
        "OIDC_RP_CLIENT_SECRET",
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        "OIDC_OP_TOKEN_ENDPOINT",
        "OIDC_OP_USER_ENDPOINT",
    ]
    if not OIDC_RP_SIGN_ALGO.startswith("HS"):
        # An asymmetric signature is checked against the keys the provider publishes.
        _oidc_required.append("OIDC_OP_JWKS_ENDPOINT")
    _oidc_missing = [name for name in _oidc_required if not globals()[name]]
    if _oidc_missing:
        raise ImproperlyConfigured(
            f"OIDC_RP_CLIENT_ID is set, which turns single sign-on on; it also needs "
            f"{', '.join(_oidc_missing)}."
        )
    OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
    # PKCE ties the authorization code to the browser that asked for it.
    OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", default=True)
    # The library would wait forever; a provider that hangs must not hold a web worker.
    OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
    OIDC_CALLBACK_CLASS = "capabilities.sso.SignoffOIDCCallbackView"
    AUTHENTICATION_BACKENDS.append("capabilities.sso.SignoffOIDCBackend")

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served by the web process itself (WhiteNoise), so a web node needs no separate file server.
WHITENOISE_USE_FINDERS = DEBUG

# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "capabilities.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["reviews.api_support.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "reviews.api_support.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Signoff API",
    "DESCRIPTION": (
        "Submit AI suggestions for human review and follow their decisions. "
        "Every call needs `Authorization: Bearer <token>`; create a token with "
        "`python manage.py create_api_client NAME --capability KEY`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Signoff ----------------------------------------------------------------------------------

# Largest request body the API accepts; larger ones get 413 and store nothing.
SIGNOFF_MAX_BODY_BYTES = env_int("SIGNOFF_MAX_BODY_BYTES", 256 * 1024)
# ... and for POST /api/v1/suggestions/batch/: 1,000 items of a few KB each.
SIGNOFF_MAX_BATCH_BODY_BYTES = env_int("SIGNOFF_MAX_BATCH_BODY_BYTES", 4 * 1024 * 1024)
# How long an Idempotency-Key and the answer it got are kept at least (a day); after that,
# `manage.py idempotency_purge` deletes them and the key may be used again.
SIGNOFF_IDEMPOTENCY_TTL_SECONDS = env_int("SIGNOFF_IDEMPOTENCY_TTL_SECONDS", 86_400)
# Capabilities whose approved actions are HTTP calls: "refunds.issue=https://erp.internal/refunds,…"
# (a Python handler registered in code takes precedence).
SIGNOFF_HTTP_HANDLERS = env_list("SIGNOFF_HTTP_HANDLERS", [])
# Outbox work enqueued this long ago and not done is enqueued again by the sweep: its job was
# lost or its worker died. Longer than the slowest handler should take.
SIGNOFF_OUTBOX_STALE_SECONDS = env_int("SIGNOFF_OUTBOX_STALE_SECONDS", 300)
# How long a reviewer's claim on an item holds before another reviewer may take it over.
SIGNOFF_CLAIM_TTL_SECONDS = env_int("SIGNOFF_CLAIM_TTL_SECONDS", 15 * 60)
# Extra regular expressions whose matches are redacted from prompts and contexts (comma-separated).
SIGNOFF_REDACT_PATTERNS = env_list("SIGNOFF_REDACT_PATTERNS", [])
# How long a rotated API token keeps working next to its successor (a day), so that systems
# switch to the new one without a gap.
SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS = env_int("SIGNOFF_TOKEN_ROTATION_OVERLAP_SECONDS", 86_400)
# A failed handler is tried again through the outbox after a random wait of up to
# BASE * 2^(attempts - 1) seconds, never more than CAP (exponential back-off, full jitter),
# until it has been tried MAX_ATTEMPTS times; then it waits for a manager's "Retry".
SIGNOFF_EXECUTION_MAX_ATTEMPTS = max(1, env_int("SIGNOFF_EXECUTION_MAX_ATTEMPTS", 5))
SIGNOFF_EXECUTION_RETRY_BASE_SECONDS = env_int("SIGNOFF_EXECUTION_RETRY_BASE_SECONDS", 30)
SIGNOFF_EXECUTION_RETRY_CAP_SECONDS = env_int("SIGNOFF_EXECUTION_RETRY_CAP_SECONDS", 60 * 60)
# Webhooks to submitters back off the same way (longer when the receiver's Retry-After asks),
# up to MAX_ATTEMPTS deliveries; a 410 Gone stops them at once.
SIGNOFF_WEBHOOK_MAX_ATTEMPTS = max(1, env_int("SIGNOFF_WEBHOOK_MAX_ATTEMPTS", 8))
SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS = env_int("SIGNOFF_WEBHOOK_RETRY_BASE_SECONDS", 30)
SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS = env_int("SIGNOFF_WEBHOOK_RETRY_CAP_SECONDS", 6 * 60 * 60)

# --- Audit trail ------------------------------------------------------------------------------

# A signed checkpoint of the chain's head is written every N events or T minutes, whichever
# comes first while events flow (see audit/signing.py for the keys).
SIGNOFF_AUDIT_CHECKPOINT_EVERY = env_int("SIGNOFF_AUDIT_CHECKPOINT_EVERY", 1000)
SIGNOFF_AUDIT_CHECKPOINT_MINUTES = env_int("SIGNOFF_AUDIT_CHECKPOINT_MINUTES", 60)
# Also append each checkpoint, as a JSON line, to this file (e.g. on write-once storage).
SIGNOFF_AUDIT_CHECKPOINT_FILE = env_str("SIGNOFF_AUDIT_CHECKPOINT_FILE")
SIGNOFF_AUDIT_SIGNING_KEY = env_str("SIGNOFF_AUDIT_SIGNING_KEY")
SIGNOFF_AUDIT_VERIFY_KEY = env_str("SIGNOFF_AUDIT_VERIFY_KEY")
SIGNOFF_AUDIT_HMAC_KEY = env_str("SIGNOFF_AUDIT_HMAC_KEY")

# --- Logging ----------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Django's own default handlers would print its records a second time.
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
