"""Real local Kafka (KRaft, jars from Maven Central) and PostgreSQL for `make run` and the test session.

API: `start_kafka`, `start_postgres` (children in their own process group, stopped at exit) and
`start_with_testcontainers` where a Docker engine exists. CLI: `python -m devtools.infra --help`; its `kafka`
and `postgres` commands exec the server in the foreground so that a process manager (honcho) owns it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

KAFKA_POM = Path(__file__).resolve().parent.parent / "deploy" / "local" / "kafka" / "pom.xml"
SERVER_PROFILE = Path(__file__).resolve().parent.parent / "deploy" / "postgres" / "gridline.conf"
HOST = "127.0.0.1"
PG_ROLE = "gridline"
PG_IMAGE = "postgres:16"
T = TypeVar("T")
Process = subprocess.Popen[bytes]


def cache_dir() -> Path:
    """`$GRIDLINE_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/gridline`."""
    if env := os.environ.get("GRIDLINE_CACHE_DIR"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridline"


def kafka_version() -> str:
    """The `<kafka.version>` property of deploy/local/kafka/pom.xml (the single place it is set)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(KAFKA_POM).find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise RuntimeError(f"no <kafka.version> property in {KAFKA_POM}")
    return node.text.strip()


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _require_free(*ports: int) -> None:
    for port in ports:
        if port_in_use(port):
            raise RuntimeError(f"{HOST}:{port} is already in use (another broker or database?)")


def ensure_kafka_jars() -> Path:
    """Return the dir of the broker's jars, fetching them with Maven unless a complete fetch is cached."""
    base = cache_dir() / f"kafka-{kafka_version()}"
    libs, marker = base / "libs", base / "libs.complete"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:  # one fetch at a time (parallel test workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return libs
        if not (shutil.which("java") and shutil.which("mvn")):
            raise RuntimeError("java and mvn are needed: apt-get install -y default-jdk-headless maven")
        shutil.rmtree(libs, ignore_errors=True)
        print(f"fetching the Kafka jars into {libs} ...", file=sys.stderr, flush=True)
        mvn = ["mvn", "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies"]
        mvn += ["-DincludeScope=runtime", f"-DoutputDirectory={libs}"]
        done = subprocess.run(mvn, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"mvn failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        marker.write_text("\n".join(sorted(p.name for p in libs.glob("*.jar"))) + "\n")
        return libs


def ensure_postgres_bindir(major: str | None = None) -> Path:
    """The PostgreSQL bin dir (highest version, or `major`); apt-installs PostgreSQL when missing."""
    for attempt in range(2):
        found = sorted((d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()),
                       key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)  # fmt: skip
        found = [d for d in found if d.parent.name == major] if major else found
        if not found and not major and shutil.which("pg_config"):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
            found = [Path(out)] if (Path(out) / "initdb").exists() else []
        if found:
            return found[-1]
        if attempt == 0:
            apt_install(f"postgresql-{major}" if major else "postgresql")
    raise RuntimeError(f"PostgreSQL {major or ''} binaries not found (apt-get install postgresql)")


def apt_install(package: str) -> None:
    """Install a Debian package when we are root on a Debian machine (no-op elsewhere)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian package {package} ...", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env, capture_output=True)


JAEGER_MODULE = Path(__file__).resolve().parent.parent / "deploy" / "local" / "jaeger"


def ensure_jaeger() -> Path:
    """The Jaeger v2 binary (trace viewer for the local run), built once from its Go module and cached.

    deploy/local/jaeger/go.mod pins the version (``go get -tool github.com/jaegertracing/jaeger/cmd/jaeger``).
    """
    version = next(
        line.split()[1] for line in (JAEGER_MODULE / "go.mod").read_text().splitlines()
        if line.strip().startswith("github.com/jaegertracing/jaeger ")
    )  # fmt: skip
    binary = cache_dir() / f"jaeger-{version}" / "jaeger"
    if binary.exists():
        return binary
    if not shutil.which("go"):
        raise RuntimeError("Go is needed to build the trace viewer (Jaeger)")
    print(f"building Jaeger {version} from its Go module (first time only, several minutes) ...", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "github.com/jaegertracing/jaeger/cmd/jaeger"],
        cwd=JAEGER_MODULE,
        capture_output=True,
        text=True,
    )
    if built.returncode:
        raise RuntimeError(f"go build of Jaeger failed:\n{built.stderr[-3000:]}")
    return binary


def ensure_chromium() -> str:
    """Debian's Chromium (and a CJK font so screenshots show Chinese) for the console's browser test."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not found:
        apt_install("chromium")
        found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").exists():
        apt_install("fonts-wqy-microhei")
    return found


def ensure_nginx() -> str:
    """Path of the nginx binary (the local gateway); apt-installs nginx-light when missing."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if not found:
        apt_install("nginx-light")
        found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise RuntimeError("nginx is needed for the gateway: apt-get install nginx-light")
    return found


def _run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def poll_until(what: str, probe: Callable[[], T], timeout: float, process: Process | None = None) -> T:
    """``probe()``'s result once it stops raising; an error if ``process`` exits or ``timeout`` passes."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before becoming ready")
        try:
            return probe()
        except Exception as exc:  # not ready yet
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s: {last!r}")


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}


def _spawn(cmd: list[str], log: Path, user: pwd.struct_passwd | None, death_signal: int) -> Process:
    """Start cmd in a new process group with output appended to `log`; it gets `death_signal` if we die."""
    main_thread = threading.current_thread() is threading.main_thread()  # PDEATHSIG fires on *thread* exit

    def preexec() -> None:
        if main_thread and sys.platform == "linux":
            ctypes.CDLL(None).prctl(1, death_signal)  # PR_SET_PDEATHSIG

    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                                start_new_session=True, preexec_fn=preexec, **_as_user(user))  # fmt: skip


@dataclass(kw_only=True)
class _Server:
    process: Process | None = None
    log_file: Path | None = None
    _container: Any = field(default=None, repr=False)
    _stop_signal: int = field(default=signal.SIGTERM, repr=False)

    def stop(self, timeout: float = 30.0) -> None:
        """Signal the server (SIGKILL its group after `timeout` s) or remove its container. Idempotent."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self._stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._container is not None:
            self._container.stop()
            self._container = None

    def kill(self) -> None:
        """SIGKILL the server's whole process group and reap it: a crash, no shutdown (local servers only)."""
        if self.process is None:
            raise RuntimeError(f"{type(self).__name__} is not a local process; it cannot be killed")
        atexit.unregister(self.stop)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _started(self, wait: Callable[[], object]) -> None:
        atexit.register(self.stop)
        try:
            wait()
        except Exception as exc:
            self.stop()
            tail = self.log_file.read_text(errors="replace").splitlines()[-30:] if self.log_file else []
            where = f"; last lines of {self.log_file}:\n" + "\n".join(tail) if self.log_file else ""
            raise RuntimeError(f"{type(self).__name__} failed to start: {exc!r}{where}") from exc


@dataclass(kw_only=True)
class LocalKafka(_Server):
    """A running broker; `stop()` = SIGTERM (controlled shutdown), also run at exit."""

    bootstrap_servers: str
    version: str


def _kafka_props(port: int, controller_port: int, data_dir: str, host: str = HOST) -> dict[str, str]:
    return {
        "process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": data_dir, "num.partitions": "3", "auto.create.topics.enable": "true",
        "log.retention.ms": "-1",  # the event store is kept forever
        "offsets.topic.num.partitions": "3", "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1", "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1", "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }  # fmt: skip


def _new_cluster_id() -> str:
    """A random Kafka Uuid in its 22-char base64url form, not starting with '-' (like Uuid.randomUuid)."""
    uuid = base64.urlsafe_b64encode(os.urandom(16)).decode()[:22]
    return "A" + uuid[1:] if uuid.startswith("-") else uuid


def prepare_kafka(workdir: Path, port: int, controller_port: int, fresh: bool) -> list[str]:
    """Fetch jars, write `<workdir>/server.properties`, format `<workdir>/data` if new; return java's argv."""
    _require_free(port, controller_port)
    libs, workdir = ensure_kafka_jars(), workdir.resolve()
    data, config = workdir / "data", workdir / "server.properties"
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    props = _kafka_props(port, controller_port, str(data))
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    classpath = ["-cp", f"{libs}/*"]
    if not (data / "meta.properties").exists():
        quick = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]  # short-lived JVM
        fmt = ["java", *quick, *classpath, "kafka.tools.StorageTool", "format", "-t", _new_cluster_id(), "-c"]
        done = subprocess.run([*fmt, str(config)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"formatting {data} failed:\n{done.stdout}{done.stderr}")
    log_level = os.environ.get("GRIDLINE_KAFKA_LOG_LEVEL", "info")  # `make run` sets warn: a quiet console
    logging = f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}"
    jvm = ["-Xmx1g", "-Djava.awt.headless=true", *os.environ.get("GRIDLINE_KAFKA_JVM_OPTS", "").split()]
    return ["java", *jvm, logging, *classpath, "kafka.Kafka", str(config)]


async def _kafka_probe(bootstrap_servers: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
        await admin.find_coordinator("gridline-readiness-probe")  # the group coordinator is loaded
    finally:
        await admin.close()


def wait_kafka(bootstrap_servers: str, timeout: float = 120.0, process: Process | None = None) -> None:
    """Block until the broker answers metadata and group-coordinator requests."""
    host, port = bootstrap_servers.split(",")[0].rsplit(":", 1)
    poll_until("Kafka port", lambda: socket.create_connection((host, int(port)), 1).close(), timeout, process)
    poll_until("Kafka", lambda: _run_async(lambda: _kafka_probe(bootstrap_servers)), timeout, process)


def start_kafka(workdir: Path, port: int, controller_port: int, fresh: bool = True) -> LocalKafka:
    """Start a KRaft broker on 127.0.0.1:`port` (log: `<workdir>/kafka.log`) and wait until it is ready.

    `fresh` wipes the log dir first (tests); `fresh=False` keeps the topics between runs (`make run`).
    """
    cmd = prepare_kafka(workdir, port, controller_port, fresh)
    log = workdir.resolve() / "kafka.log"
    if fresh:
        log.unlink(missing_ok=True)
    process = _spawn(cmd, log, None, signal.SIGTERM)
    kafka = LocalKafka(bootstrap_servers=f"{HOST}:{port}", version=kafka_version(), process=process)
    kafka.log_file = log
    kafka._started(lambda: wait_kafka(kafka.bootstrap_servers, 120.0, process))
    return kafka


@dataclass(kw_only=True)
class LocalPostgres(_Server):
    """A running server where role `user` is trusted; `stop()` = fast shutdown, also run at exit."""

    host: str
    port: int
    user: str = PG_ROLE
    version: str = ""
    _stop_signal: int = field(default=signal.SIGINT, repr=False)

    def dsn(self, database: str = "postgres") -> str:
        """`postgresql://gridline@host:port/database` (no password: trust auth)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_databases(self, names: Iterable[str]) -> list[str]:
        """CREATE DATABASE for each missing name; return the names created."""
        return create_databases_at(self.dsn(""), names)


def _server_url(url: str) -> str:
    """`postgresql://user@host:port[/db]` (or `host:port`) -> the URL of its `postgres` database."""
    url = url if "://" in url else f"postgresql://{PG_ROLE}@{url}"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}/postgres"


def create_databases_at(url: str, names: Iterable[str]) -> list[str]:
    """Create the missing databases among `names` on the server at `url` (idempotent); return the new."""

    async def create() -> list[str]:
        conn = await asyncpg.connect(_server_url(url))
        created = []
        try:
            for name in names:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                    with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # raced another creator
                        await conn.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
                        created.append(name)
        finally:
            await conn.close()
        return created

    return _run_async(create)


def create_databases(port: int, names: Iterable[str], host: str = HOST) -> list[str]:
    """`create_databases_at` for the local server on host:port as role gridline."""
    return create_databases_at(f"{host}:{port}", names)


def postgres_server_version(url: str, timeout: float = 60.0, process: Process | None = None) -> str:
    """Block until the server at `url` (or `host:port`) accepts connections; return its `server_version`."""

    async def probe() -> str:
        conn = await asyncpg.connect(_server_url(url), timeout=2)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return poll_until("PostgreSQL", lambda: _run_async(probe), timeout, process)


def _server_user() -> pwd.struct_passwd | None:
    """None unless root; then the unprivileged OS user that runs initdb/postgres (created if needed)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", PG_ROLE):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(["useradd", "--system", "--user-group", "-s", "/usr/sbin/nologin", PG_ROLE], check=True)
    return pwd.getpwnam(PG_ROLE)


def prepare_postgres(
    datadir: Path,
    port: int,
    fresh: bool = False,
    fast_unsafe: bool = False,
    statement_stats: bool = False,
    server_settings: dict[str, str] | None = None,
) -> list[str]:
    """Install PostgreSQL if missing and initdb `datadir` if new; return the `postgres` argv.

    A cluster that keeps its data runs with Gridline's server profile (deploy/postgres/gridline.conf);
    `fast_unsafe` (tests) runs without fsync and full-page writes, on PostgreSQL's defaults otherwise.
    `statement_stats` loads pg_stat_statements (the benchmarks' per-statement profile);
    `server_settings` are further `-c` settings, last (a benchmark measuring a tuning)."""
    _require_free(port)
    datadir, user = datadir.resolve(), _server_user()
    if fresh:
        shutil.rmtree(datadir, ignore_errors=True)
    pg_version = datadir / "PG_VERSION"
    bindir = ensure_postgres_bindir(pg_version.read_text().strip() if pg_version.exists() else None)
    if not pg_version.exists():
        datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if user:
            os.chown(datadir, user.pw_uid, user.pw_gid)
            if subprocess.run(["test", "-w", str(datadir)], **_as_user(user)).returncode:
                raise RuntimeError(f"OS user {user.pw_name} cannot write {datadir} (parent not searchable?)")
        initdb = [str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", PG_ROLE, "-E", "UTF8"]
        initdb += ["--no-locale", *(["--no-sync"] if fast_unsafe else [])]
        subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, cwd="/", **_as_user(user))
    settings = cluster_settings(fast_unsafe, statement_stats, server_settings)
    cmd = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port)]
    return cmd + [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]


def server_profile(path: Path = SERVER_PROFILE) -> dict[str, str]:
    """The settings of a PostgreSQL configuration file of `name = value` lines (`#` comments)."""
    settings = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, value = (part.strip() for part in line.partition("="))
        if not (name and equals and value):
            raise ValueError(f"{path}:{number}: expected `name = value`, got {line!r}")
        settings[name] = value
    return settings


def cluster_settings(
    fast_unsafe: bool, statement_stats: bool = False, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """A local cluster's `-c` settings (see `prepare_postgres`)."""
    settings = {"listen_addresses": HOST, "unix_socket_directories": "", "max_connections": "200"}
    if fast_unsafe:  # throwaway test data only: a crash can corrupt the cluster
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    else:
        settings |= server_profile()
    if statement_stats:
        settings |= {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
    return settings | (extra or {})


def start_postgres(
    datadir: Path,
    port: int,
    fresh: bool = False,
    fast_unsafe: bool = False,
    statement_stats: bool = False,
    server_settings: dict[str, str] | None = None,
) -> LocalPostgres:
    """Start PostgreSQL on 127.0.0.1:`port` (log: `<datadir>.log`) and wait until it accepts connections.

    `fresh` wipes `datadir` first; `fast_unsafe` turns fsync off (test profile only).
    """
    cmd = prepare_postgres(datadir, port, fresh, fast_unsafe, statement_stats, server_settings)
    log = datadir.resolve().with_name(datadir.name + ".log")
    if fresh:
        log.unlink(missing_ok=True)
    process = _spawn(cmd, log, _server_user(), signal.SIGINT)
    pg = LocalPostgres(host=HOST, port=port, process=process, log_file=log)
    pg._started(lambda: setattr(pg, "version", postgres_server_version(pg.dsn(), 60.0, process)))
    return pg


def docker_available() -> bool:
    """True only if `docker info` succeeds within 5 s."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_with_testcontainers(timeout: float = 180.0) -> tuple[LocalKafka, LocalPostgres]:
    """Start apache/kafka and postgres:16 containers; returns the same endpoint objects as the local path.

    testcontainers' KafkaContainer only drives Confluent images, so Kafka is a generic container set up
    like the local broker, on a host port chosen up front (it must be advertised before the start).
    """
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    version = kafka_version()
    kc = DockerContainer(f"apache/kafka:{version}")
    host = kc.get_docker_client().host()
    with socket.socket() as s:
        s.bind(("", 0))
        host_port = s.getsockname()[1]
    props = _kafka_props(9092, 9093, "/tmp/kafka-data", host="localhost")
    props["listeners"] = "PLAINTEXT://:9092,CONTROLLER://localhost:9093"
    props["advertised.listeners"] = f"PLAINTEXT://{host}:{host_port}"
    env = {f"KAFKA_{key.upper().replace('.', '_')}": value for key, value in props.items()}
    kc.with_envs(CLUSTER_ID=_new_cluster_id(), **env)
    kc.with_bind_ports(9092, host_port)
    kc.waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(int(timeout)))
    kafka = LocalKafka(bootstrap_servers=f"{host}:{host_port}", version=version, _container=kc)

    def kafka_ready() -> None:
        kc.start()
        wait_kafka(kafka.bootstrap_servers, timeout)

    kafka._started(kafka_ready)
    pc = PostgresContainer(PG_IMAGE, username=PG_ROLE, dbname="postgres", driver=None)
    pc.with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
    pg = LocalPostgres(host="", port=0, _container=pc)

    def pg_ready() -> None:
        pc.start()
        pg.host, pg.port = pc.get_container_host_ip(), int(pc.get_exposed_port(5432))
        pg.version = postgres_server_version(pg.dsn(), timeout)

    try:
        pg._started(pg_ready)
    except Exception:
        kafka.stop()
        raise
    return kafka, pg


def fetch() -> tuple[Path, Path]:
    """Ensure the Kafka jars and the PostgreSQL binaries (CI setup, `make run`); return both dirs."""
    return ensure_kafka_jars(), ensure_postgres_bindir()


def wait_until_ready(kafka: str | None = None, postgres: str | None = None, timeout: float = 120.0) -> None:
    """Block until Kafka (bootstrap servers) and PostgreSQL (URL or host:port) are ready, within `timeout`."""
    deadline = time.monotonic() + timeout
    if kafka:
        wait_kafka(kafka, timeout)
    if postgres:
        postgres_server_version(postgres, max(1.0, deadline - time.monotonic()))


def _exec(cmd: list[str], user: pwd.struct_passwd | None = None) -> None:
    sys.stdout.flush()
    os.chdir("/")
    for sig in (signal.SIGINT, signal.SIGTERM):  # a shell's `cmd &` ignores SIGINT; the server must not
        signal.signal(sig, signal.SIG_DFL)
    if user:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    os.execvp(cmd[0], cmd)


def main(argv: list[str] | None = None) -> None:
    """`python -m devtools.infra {fetch,kafka,postgres,wait,createdbs}`."""
    parser = argparse.ArgumentParser(prog="python -m devtools.infra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="ensure the Kafka jars and PostgreSQL binaries")
    f.add_argument(
        "--for-tests", action="store_true", help="also Chromium and CJK fonts (console browser test)"
    )
    k = sub.add_parser("kafka", help="run a broker in the foreground (formats its storage if new)")
    k.add_argument("--port", type=int, default=9092)
    k.add_argument("--controller-port", type=int, default=9093)
    k.add_argument("--workdir", type=Path, required=True)
    k.add_argument("--fresh", action="store_true", help="wipe the log dir first")
    p = sub.add_parser("postgres", help="run PostgreSQL in the foreground (initdb if new)")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--datadir", type=Path, required=True)
    p.add_argument("--fast-unsafe", action="store_true", help="fsync off (throwaway data only)")
    w = sub.add_parser("wait", help="block until the servers are ready")
    w.add_argument("--kafka", metavar="HOST:PORT")
    w.add_argument("--postgres", metavar="HOST:PORT|URL")
    w.add_argument("--timeout", type=float, default=120.0)
    c = sub.add_parser("createdbs", help="create the missing databases")
    c.add_argument("--host", default=HOST)
    c.add_argument("--port", type=int, default=5432)
    c.add_argument("names", nargs="+")
    args = parser.parse_args(argv)

    if args.cmd == "fetch":
        print("kafka jars: {}\npostgresql: {}".format(*fetch()))
        if args.for_tests:
            print(f"chromium: {ensure_chromium()}")
    elif args.cmd == "kafka":
        _exec(prepare_kafka(args.workdir, args.port, args.controller_port, args.fresh))
    elif args.cmd == "postgres":
        _exec(prepare_postgres(args.datadir, args.port, fast_unsafe=args.fast_unsafe), _server_user())
    elif args.cmd == "wait":
        started = time.monotonic()
        wait_until_ready(args.kafka, args.postgres, args.timeout)
        print(f"ready after {time.monotonic() - started:.1f}s")
    else:
        created = create_databases(args.port, args.names, args.host)
        print(f"created: {' '.join(created) or '(none; all exist)'}")


if __name__ == "__main__":
    main()
