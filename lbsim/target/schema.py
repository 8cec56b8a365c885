"""The target file: the user's running compose stack, and how to perform each request class on it.

A target file tells ``lbsim calibrate/replay SCENARIO --target FILE`` where
the user's stack runs and what HTTP request performs each class of the
scenario. Every key, its type and its default::

    target: wordpress            # the target's name (this key marks the file as a target)
    compose:
      project: lbsim-wp          # the compose project (label com.docker.compose.project)
      file: docker-compose.yml   # the compose file, relative to this file (needed with start)
      start: false               # may lbsim start (up -d) and stop the project? Default false:
                                 #   lbsim never starts, stops or changes the user's containers
      start_timeout: 300         # seconds lbsim waits for a project it started to serve
    services:                    # compose service names (one running container each)
      balancer: lb               # the entry point's container (optional)
      app: [app1, app2]          # the PHP-FPM nodes (a single name is a list of one)
      database: [db]             # the database nodes: one MariaDB, or the Galera nodes
    url: http://127.0.0.1:18200  # the entry point: http on a loopback address only
    headers: {Host: example.test}  # sent with every request (a request's own win)
    requests:                    # per class of the scenario (lbsim.target.request_spec)
      front: {path: /}
      post: {path: "/?p={id}", ids: {range: [1, 200]}}
    database:                    # required when services.database names nodes
      engine: mysql              # mysql | galera
      user: root                 # default root
      password: secret           # or password_file: FILE; neither: socket access in the container
      client: mariadb            # the client program in the container: mariadb | mysql
    fpm_status: /status          # php-fpm's pm.status_path, read with cgi-fcgi in each app node
    fpm_listen: 127.0.0.1:9000   # where php-fpm listens inside its container (host:port or socket)

Validation happens here, once; a :class:`TargetSpec` is frozen afterwards.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lbsim.scenario.errors import NAME_PATTERN, AtKey
from lbsim.scenario.yamlio import UnreadableFile, read_regular_text
from lbsim.target.request_spec import (
    Frozen,
    HeaderName,
    RequestSpec,
    base_dir,
    compile_headers,
    resolve_file,
)
from lbsim.target.templates import Template
from lbsim.validation.loadgen import Target

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
#: a compose service name


def _matching(pattern: str, what: str) -> AfterValidator:
    """A string check whose message says what is allowed (not the regular expression)."""
    rx = re.compile(pattern)

    def check(value: str) -> str:
        if not rx.fullmatch(value):
            raise ValueError(f"{what} (got {value!r})")
        return value

    return AfterValidator(check)


ServiceName = Annotated[
    str,
    Field(max_length=63),
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        "a compose service name: letters, digits, '_', '.' and '-', starting with a letter "
        "or digit",
    ),
]
#: a compose project name (compose lower-cases nothing: it must already be valid)
ProjectName = Annotated[
    str,
    Field(max_length=63),
    _matching(
        r"[a-z0-9][a-z0-9_-]*",
        "a compose project name: lower-case letters, digits, '_' and '-', starting with a "
        "letter or digit",
    ),
]
FpmPath = Annotated[
    str,
    Field(max_length=200),
    _matching(r"/[^\s?#]*", "a path starting with '/', without spaces, '?' or '#'"),
]
FpmListen = Annotated[
    str,
    _matching(
        r"/\S+|[A-Za-z0-9_.:\[\]-]+:[0-9]{1,5}",
        "where php-fpm listens in its container: HOST:PORT or a socket's absolute path",
    ),
]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, le=86400, allow_inf_nan=False)]


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Nodes = Annotated[tuple[ServiceName, ...], BeforeValidator(_one_or_many)]


class ComposeSpec(Frozen):
    """The user's compose project."""

    project: ProjectName
    file: Path | None = None
    start: StrictBool = False
    start_timeout: PositiveFloat = 300.0

    _path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _file(self, info: ValidationInfo) -> ComposeSpec:
        if self.start and self.file is None:
            raise AtKey("file", "start: true needs the compose file lbsim may start")
        if self.file is not None:
            path = resolve_file(self.file, base_dir(info))
            if not path.is_file():
                raise AtKey("file", f"{path}: no such file")
            self._path = path
        return self

    @property
    def path(self) -> Path | None:
        """The compose file, resolved against the target file's directory."""
        return self._path


class Services(Frozen):
    """Compose service names by role."""

    balancer: ServiceName | None = None
    app: Nodes = Field(min_length=1)
    database: Nodes = ()

    @model_validator(mode="after")
    def _distinct(self) -> Services:
        role: dict[str, str] = {}
        if self.balancer is not None:
            role[self.balancer] = "balancer"
        for key in ("app", "database"):
            for i, name in enumerate(getattr(self, key)):
                if name in role:
                    raise AtKey((key, i), f"{name!r} is already named as {role[name]}")
                role[name] = f"{key}[{i}]"
        return self

    @property
    def all(self) -> tuple[str, ...]:
        """Every service named, balancer first."""
        first = (self.balancer,) if self.balancer is not None else ()
        return (*first, *self.app, *self.database)


class DatabaseAccess(Frozen):
    """How lbsim reaches the database: ``docker exec`` of the client in the first node."""

    engine: Literal["mysql", "galera"]
    user: str = Field(default="root", min_length=1, max_length=80, pattern=r"^\S+$")
    password: SecretStr | None = None
    password_file: Path | None = None
    client: Literal["mariadb", "mysql"] = "mariadb"

    _secret: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _password(self, info: ValidationInfo) -> DatabaseAccess:
        if self.password is not None and self.password_file is not None:
            raise AtKey("password_file", "give password or password_file, not both")
        if self.password is not None:
            self._secret = self.password.get_secret_value()
        elif self.password_file is not None:
            path = resolve_file(self.password_file, base_dir(info))
            try:
                self._secret = read_regular_text(path, "password file", 64 * 1024).rstrip("\r\n")
            except UnreadableFile as exc:
                raise AtKey("password_file", f"{path}: {exc}") from None
        if self._secret is not None and ("\n" in self._secret or "\0" in self._secret):
            key = "password" if self.password is not None else "password_file"
            raise AtKey(key, "the password holds a line break or a NUL character")
        return self

    @property
    def secret(self) -> str | None:
        """The password (None: socket access inside the container)."""
        return self._secret

    @property
    def password_source(self) -> str:
        """Where the password comes from, for messages (never the password)."""
        if self.password is not None:
            return "database.password"
        if self.password_file is not None:
            return f"database.password_file ({self.password_file})"
        return "no password (socket access inside the container)"


class TargetSpec(Frozen):
    """A validated target file."""

    target: Name
    compose: ComposeSpec
    services: Services
    url: str
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    requests: dict[Name, RequestSpec] = Field(min_length=1)
    database: DatabaseAccess | None = None
    fpm_status: FpmPath | None = None
    fpm_listen: FpmListen = "127.0.0.1:9000"

    _headers: tuple[tuple[str, Template], ...] = PrivateAttr(default=())
    _files: dict[str, str] = PrivateAttr(default_factory=dict)
    _base_dir: Path | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http":
            raise ValueError(
                f"the url must be http://HOST:PORT on loopback (got scheme {parts.scheme!r}; "
                "the load generator speaks plain HTTP)"
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"the url's port is not a port number: {value!r}") from None
        try:
            target = Target.from_url(value)
        except ValueError:
            raise ValueError(
                f"the url must be on this machine's loopback (127.0.0.1, localhost or ::1), "
                f"not {parts.hostname or ''!r}: lbsim sends load to a published local port only"
            ) from None
        if port == 0:
            raise ValueError("the url's port cannot be 0")
        if parts.username or parts.password:
            raise ValueError("the url cannot hold a user or password")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                "the url is the entry point only (http://HOST:PORT); "
                "give each request's path under requests"
            )
        host = f"[{target.host}]" if ":" in target.host else target.host
        return f"http://{host}:{target.port}/"

    @model_validator(mode="after")
    def _wiring(self, info: ValidationInfo) -> TargetSpec:
        self._base_dir = base_dir(info)
        if self.services.database and self.database is None:
            raise AtKey(
                ("services", "database"),
                "names database nodes: add a database: section to reach them "
                "(engine: mysql or galera, and how to log in)",
            )
        if self.database is not None and not self.services.database:
            raise AtKey("database", "there is no services.database to reach")
        self._headers, self._files = compile_headers(self.headers, self._base_dir, ("headers",))
        for name, template in self._headers:
            drawn = template.names & {"id", "word"}
            if drawn:
                raise AtKey(
                    ("headers", name),
                    f"{{{min(drawn)}}} is drawn per class: use it in a request's own headers",
                )
        return self

    @property
    def header_templates(self) -> tuple[tuple[str, Template], ...]:
        """The headers sent with every request (a request's own headers override them)."""
        return self._headers

    @property
    def files(self) -> dict[str, str]:
        """``file:NAME`` → text for the top-level headers' file placeholders."""
        return dict(self._files)

    @property
    def base_dir(self) -> Path | None:
        """The target file's directory (relative file names resolve from it)."""
        return self._base_dir

    @property
    def host_header(self) -> str:
        """``Host`` as a browser sends it for the url (``127.0.0.1:18200``)."""
        return urlsplit(self.url).netloc
