"""Configuration layers: defaults, instance file, environment, test dict."""
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet


class Defaults:
    """Built-in defaults; every key can be overridden by PROVIDER_ADMIN_<KEY>."""

    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # A page left open for a working day must still be able to submit.
    WTF_CSRF_TIME_LIMIT = 24 * 3600
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = "auto"  # Secure when the page was served over https
    # Framed by another origin (FRAME_ANCESTORS), the cookie is SameSite=None; Secure; this adds
    # Partitioned (CHIPS): a session per portal site, kept where third-party cookies are blocked.
    SESSION_COOKIE_PARTITIONED = False
    SESSION_IDLE_TIMEOUT = 12 * 3600  # seconds without a request before a session ends
    SESSION_LIFETIME = 24 * 3600  # seconds after sign-in when a session ends, used or not
    SIGN_IN_MAX_FAILURES = 5  # per account, within 15 minutes, before sign-in is locked
    SIGN_IN_MAX_FAILURES_PER_ADDRESS = 20  # per client address, likewise
    SIGN_IN_LOCKOUT = 900  # the longest lock, in seconds (locks double from 30 s)
    API_RATE_LIMIT = "600/minute"  # per API token (per client address before the token is known)
    API_RATE_LIMIT_STORAGE = "memory://"  # counts per process; redis://host:6379 counts across them
    FRAME_ANCESTORS = "'self'"  # 'self', 'none', or origins such as https://portal.example.com
    METRICS_ALLOW = ""  # addresses or networks that may read /metrics (the client as the proxy saw it)
    METRICS_TOKEN = None  # or a bearer token that may
    SITE_NAME = "Provider Admin"  # in the title, the top bar and the sign-in page
    LOGO_URL = None  # an https URL or a path on this site, shown in the top bar
    ACCENT_COLOR = None  # #rrggbb: the top bar and primary buttons; the text on it is black or white
    TRUSTED_PROXIES = ""
    AUTO_MIGRATE = True
    RUN_SCHEDULER = None  # None: only under `flask run` (see checks.scheduler)
    TRUSTED_HEADER = None
    PROXY_FIX = False
    PROXY_FIX_HOPS = 1
    SITE_ACCESS_URL = "http://localhost:5000"
    POLL_SECONDS = 5
    CHECK_INTERVAL = 30
    CHECK_TIMEOUT = 5.0
    # Seconds a Deploy, a bootstrap removal or one step of a workspace build may take with all
    # its requests (each at most CHECK_TIMEOUT). A Deploy answers within this plus a check's
    # CHECK_TIMEOUT: keep the sum below gunicorn's worker timeout (GUNICORN_TIMEOUT, 60 s).
    OPERATION_TIMEOUT = 15.0
    CHECK_POOL_SIZE = 64  # threads wait on the network: enough for 10 % of 5,000 clusters going down at once
    CHECK_FAILURE_THRESHOLD = 2
    CHECK_PERMISSIONS_EVERY = 300
    CHECK_BACKOFF_MAX = 300
    CHECK_LEASE = 120
    # Seconds a stopping scheduler gives its running checks (below Kubernetes' 30 s default grace).
    CHECK_SHUTDOWN_GRACE = 20
    CHECK_HISTORY = 50
    READY_TIMEOUT = 2.0  # seconds /readyz waits for the database (to connect, and per statement)
    DATABASE_CONNECT_TIMEOUT = 5  # seconds a new PostgreSQL connection may take (a host gone silent)
    MAX_BODY_BYTES = 1024 * 1024  # a request body past this is refused (413) unread
    MAX_FORM_FIELD_BYTES = 256 * 1024  # one form field, the largest being a pasted kubeconfig
    # Cluster addresses on link-local networks or cloud metadata services are refused (the
    # token would go to whatever answers there) unless this is true.
    ALLOW_LINK_LOCAL_CLUSTERS = False
    # Notifications (see provider_admin.notifications): delivered by the scheduler.
    NOTIFY_MAX_ATTEMPTS = 6  # tries of one delivery before it is marked failed
    NOTIFY_RETRY_BASE = 30  # seconds before the first retry; each next waits twice as long
    NOTIFY_RETRY_MAX = 3600  # the longest wait between two tries, in seconds
    NOTIFY_TIMEOUT = 5.0  # seconds to connect to and hear back from a webhook or the SMTP server
    NOTIFY_LEASE = 60  # seconds a scheduler holds a claimed delivery (longer than one send)
    NOTIFY_FLAP_WINDOW = 600  # a provider's status changes within this many seconds: one message
    NOTIFY_TOKEN_EXPIRY_DAYS = 7  # tell people this many days before a token expires
    SMTP_HOST = None  # the mail server for e-mail targets; unset: e-mail deliveries fail, saying so
    SMTP_PORT = 587
    SMTP_SECURITY = "starttls"  # starttls, tls (implicit, port 465) or none
    SMTP_USER = None
    SMTP_PASSWORD = None  # from the environment: PROVIDER_ADMIN_SMTP_PASSWORD
    SMTP_FROM = "provider-admin@localhost"
    BUILTIN_PROVIDER = None  # a name: registers the in-cluster provider when running in Kubernetes
    BUILTIN_NAMESPACE = None  # its workspaces' namespace; default: the pod's own
    PASSWORD_SIGN_IN = True  # false: single sign-on (or the trusted header) is the only way in
    # OpenID Connect single sign-on: on when an issuer is set (see provider_admin.oidc).
    OIDC_ISSUER = None
    OIDC_CLIENT_ID = None
    OIDC_CLIENT_SECRET = None
    OIDC_SCOPES = "openid email profile"
    OIDC_BUTTON_LABEL = "Sign in with SSO"
    OIDC_ALLOW_SIGNUP = False
    OIDC_ALLOW_UNVERIFIED_EMAIL = False
    OIDC_TIMEOUT = 10.0
    OIDC_GROUPS_CLAIM = "groups"  # a dotted path reaches into nested claims: realm_access.roles
    OIDC_ROLE_MAP = {}  # {"group": "admin" | "manager" | "member"}; empty: roles are not synced
    OIDC_DEFAULT_ROLE = "member"  # the role of a synced user whom no group maps to one
    OIDC_ORGANIZATION_MAP = {}  # {"group": "Organization name"}
    OIDC_ORGANIZATION_PREFIX = None  # e.g. "org:": group "org:Platform" -> organization Platform


def instance_path(root: Path) -> str:
    """PROVIDER_ADMIN_INSTANCE_PATH, resolved against the working directory when relative;
    by default the `instance` folder of the project (next to app.py)."""
    given = os.environ.get("PROVIDER_ADMIN_INSTANCE_PATH")
    return os.path.abspath(given) if given else str(root / "instance")


def normalize_database_url(url: str) -> str:
    """Accept the conventional postgres:// spellings and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _key_file(instance: Path, name: str, make) -> str:
    """Read a key from the instance folder, generating it (mode 0600) on first start."""
    path = instance / name
    if not path.exists():
        # Written aside and linked into place: workers starting together never read a
        # half-written key, and the ones that lose the race use the winner's.
        fd, tmp = tempfile.mkstemp(dir=instance, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(make())
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


OWNER_ONLY = 0o600
SECRET_FILES = ("secret_key", "encryption_key", "config.py")


def restrict(path: Path) -> None:
    """Make a file readable by its owner only (the instance folder holds secrets)."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(OWNER_ONLY)


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?")[0])


def protect_files(instance: Path, database_url: str) -> None:
    """Keys, the instance config and the SQLite database (created here, before SQLite would
    create it readable by all) are the owner's only; SQLite gives its journal files the
    database's permissions."""
    for name in SECRET_FILES:
        restrict(instance / name)
    database = _sqlite_path(database_url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, OWNER_ONLY))
        for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))):
            restrict(path)


def load(app, test_config=None) -> None:
    """Fill app.config from the layers, then derive what was not given."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PROVIDER_ADMIN")
    # DATABASE_URL: the environment's, else one set in config.py (or PROVIDER_ADMIN_DATABASE_URL).
    database_url = os.environ.get("DATABASE_URL") or app.config.get("DATABASE_URL")
    if database_url:
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if test_config:
        app.config.update(test_config)

    instance = Path(app.instance_path)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI", f"sqlite:///{instance / 'provider_admin.sqlite'}"
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    body = int(app.config["MAX_BODY_BYTES"])
    app.config["MAX_CONTENT_LENGTH"] = body
    # One field may take the whole body: past MAX_FORM_FIELD_BYTES it is a field error, not a 413.
    app.config["MAX_FORM_MEMORY_SIZE"] = body
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _key_file(instance, "secret_key", lambda: secrets.token_hex(32))
    if not app.config.get("ENCRYPTION_KEY"):
        app.config["ENCRYPTION_KEY"] = _key_file(
            instance, "encryption_key", lambda: Fernet.generate_key().decode()
        )
    protect_files(instance, app.config["SQLALCHEMY_DATABASE_URI"])
