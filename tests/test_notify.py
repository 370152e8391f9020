"""Notifications: real builds of real notebooks, webhooks received by a real HTTP server on
127.0.0.1 and mail by a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import ROOT, free_port, run_cli, write_notebook, write_project
from lab2land.config import ConfigError, EmailConfig, NotifyConfig, WebhookConfig, load_config
from lab2land.errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lab2land.notify import kind_of

TOKEN = "T000/B000/s3cr3t-token"  # a webhook path is a credential: it must never be shown
PASSWORD = "smtp-pa55word"
PASSWORD_ENV = "LAB2LAND_TEST_SMTP_PASSWORD"
CHECK = '[reports.s.checks]\ntotal = "< 100"'


class Hook:
    """A real HTTP server on 127.0.0.1 that records each POST (path and JSON body) and answers
    with the next of ``statuses``, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.received: list[tuple[str, dict]] = []
        self.statuses = list(statuses)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/json"
                hook.received.append((self.path, json.loads(body)))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = TOKEN) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body in self.received]


@pytest.fixture
def hooks():
    """Makes :class:`Hook` servers; all are shut down after the test."""
    made: list[Hook] = []

    def make(*statuses: int) -> Hook:
        made.append(Hook(statuses))
        return made[-1]

    yield make
    for hook in made:
        hook.server.shutdown()
        hook.server.server_close()


class Inbox:
    """aiosmtpd handler: keeps every message it is given, parsed."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.logins: list[str] = []
        self.tls: list[bool] = []  # per message: whether it came over TLS

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, parsed))
        self.tls.append(session.ssl is not None)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append(auth_data.login.decode())
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"reports", PASSWORD.encode()))


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1 that asks for a login (plain text: the test has no TLS)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox.authenticate,
                            auth_require_tls=False)
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def email_toml(port: int, on: str = '["failed", "degraded"]', starttls: bool = False) -> str:
    return (f'[notify.email]\nsmtp_host = "127.0.0.1"\nport = {port}\nstarttls = {str(starttls).lower()}\n'
            f'from = "reports@example.com"\nto = ["team@example.com", "lead@example.com"]\nuser = "reports"\n'
            f'password_env = "{PASSWORD_ENV}"\non = {on}\n')


def webhook_toml(url: str, on: str | None = None, fmt: str = "json") -> str:
    return f'[[notify.webhooks]]\nurl = "{url}"\nformat = "{fmt}"\n' + (f"on = {on}\n" if on else "")


def project(root: Path, notify: str, parameters=None, site_url: str | None = None) -> Path:
    """A report ``s`` recording ``total = 10 * factor`` (checked ``< 100``) that raises when ``fail``."""
    nb = write_notebook(root / "s.ipynb", "factor = 1.0\nfail = False",
                        "from lab2land import record\nrecord('total', 10 * factor)",
                        "if fail:\n    raise ValueError('boom at factor ' + str(factor))")
    site = {"title": "Team site", **({"url": site_url} if site_url else {})}
    write_project(root, reports={"s": {"notebook": nb.name, "title": "Sales",
                                       "parameters": parameters or {"factor": 1.0}}},
                  extra_toml=notify + "\n", site=site)
    with open(root / "publish.toml", "a", encoding="utf-8") as fh:
        fh.write(f"{CHECK}\n")
    return root


def set_parameters(root: Path, text: str) -> None:
    """Replace report ``s``'s ``parameters`` line with ``parameters = TEXT``."""
    lines = (root / "publish.toml").read_text().splitlines()
    lines = [f"parameters = {text}" if line.startswith("parameters = ") else line for line in lines]
    (root / "publish.toml").write_text("\n".join(lines) + "\n")


def build(root: Path, *args: str, code: int = EXIT_OK, env: dict | None = None):
    proc = run_cli("build", *args, project=root, env=env)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc


def catalog(root: Path) -> dict:
    return json.loads((root / "reports" / "catalog.json").read_text())["reports"]["s"]


def notify_log(root: Path) -> str:
    return (root / ".lab2land" / "logs" / "notify.log").read_text()


def assert_no_secret(root: Path, *texts: str) -> None:
    """Neither the webhook token nor the SMTP password is in ``texts``, the log, the site or the state."""
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text
    for path in [*(root / "reports").rglob("*"), *(root / ".lab2land").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and PASSWORD.encode() not in data, path


def test_each_event_is_one_post_in_json_and_slack_with_absolute_links(tmp_path, hooks):
    everything, trouble = hooks(), hooks()
    root = project(tmp_path, webhook_toml(everything.url(), '["published"]') + webhook_toml(trouble.url(), fmt="slack"),
                   site_url="https://reports.example.com/team/")

    build(root)  # a first version: news for "published", nothing for failed/degraded/recovered
    (first,) = everything.bodies
    version = catalog(root)["versions"][0]["id"]
    assert first["event"] == "published" and first["status"] == "ok" and first["report"] == "s"
    assert first["title"] == "Sales" and first["site"] == "Team site" and first["version"] == version
    assert first["links"]["version"] == f"https://reports.example.com/team/s/{version}/index.html"
    assert first["links"]["history"] == "https://reports.example.com/team/s/index.html"
    assert (root / "reports" / "s" / version / "index.html").is_file()
    assert trouble.received == [] and everything.received[0][0] == f"/{TOKEN}"

    set_parameters(root, "{ factor = 20.0 }")  # total = 200 breaches "< 100"
    build(root, code=3)
    degraded = everything.bodies[1]
    assert degraded["event"] == "degraded" and degraded["breaches"] == ["total = 200, expected < 100"]
    assert degraded["links"]["changes"].endswith(f"/s/{degraded['version']}/changes.html")
    (slack,) = trouble.bodies
    assert set(slack) == {"text"} and "*Sales: DEGRADED*" in slack["text"]
    assert "total = 200, expected &lt; 100" in slack["text"]  # Slack reads < and > as markup
    assert f"<https://reports.example.com/team/s/{degraded['version']}/index.html|version>" in slack["text"]

    set_parameters(root, "{ factor = 1.0, fail = true }")
    build(root, code=EXIT_FAILED)
    failed = everything.bodies[2]
    assert failed["event"] == "failed" and "ValueError: boom at factor 1.0" in failed["error"]
    assert "FAILED" in trouble.bodies[1]["text"] and "boom at factor 1.0" in trouble.bodies[1]["text"]

    set_parameters(root, "{ factor = 1.0 }")
    build(root)  # ok after a failed version
    assert [b["event"] for b in everything.bodies] == ["published", "degraded", "failed", "recovered"]
    assert [b["text"].split(":")[1].split("*")[0].strip() for b in trouble.bodies] == ["DEGRADED", "FAILED",
                                                                                      "RECOVERED"]
    assert everything.bodies[3]["status"] == "ok"

    proc = build(root)  # unchanged: no new version, no message
    assert len(everything.received) == 4 and len(trouble.received) == 3
    assert_no_secret(root, proc.stdout, proc.stderr, notify_log(root))


def test_a_500_is_retried_and_a_dead_target_fails_neither_build_nor_version(tmp_path, hooks):
    flaky = hooks(500)
    dead = f"http://127.0.0.1:{free_port()}/{TOKEN}"  # nothing listens there: connection refused
    root = project(tmp_path, webhook_toml(dead, '["published"]') + webhook_toml(flaky.url(), '["published"]'),
                   parameters=[{"factor": 1.0}, {"factor": 2.0}])

    proc = build(root)
    versions = catalog(root)["versions"]
    assert len(versions) == 2 and all((root / "reports" / "s" / v["id"] / "manifest.json").is_file() for v in versions)
    # one POST per event (two variants), the first answered 500 and sent again
    assert len(flaky.received) == 3 and flaky.bodies[0] == flaky.bodies[1]
    assert {b["variant"] for b in flaky.bodies} == {v["variant"] for v in versions}
    assert not flaky.bodies[0]["links"]["version"].startswith("http")  # no [site] url: site-relative paths
    assert flaky.bodies[0]["links"]["version"] == f"s/{flaky.bodies[0]['version']}/index.html"

    port = dead.split(":")[2].split("/")[0]
    shown = f"webhook 1 (http://127.0.0.1:{port}/…)"
    log = notify_log(root)
    for text in (proc.stderr, log):
        assert f"{shown}: published of s[" in text and "attempt 3/3 failed" in text and "(giving up)" in text
        assert f"{shown}: 1 more message(s) not sent in this build" in text
        assert "webhook 2 (http" in text and "attempt 1/3 failed: HTTP 500" in text
    assert log.count("attempt 1/3 failed") == 2  # the dead one once (then given up on), the flaky one once
    assert_no_secret(root, proc.stdout, proc.stderr)


def test_mail_has_subject_error_and_links_and_a_missing_password_is_a_logged_error(tmp_path, smtp):
    root = project(tmp_path, email_toml(smtp.port), parameters={"factor": 1.0, "fail": True})
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    proc = build(root, code=EXIT_FAILED, env=env)
    (version,) = catalog(root)["versions"]
    ((sender, recipients, msg),) = smtp.messages
    assert smtp.logins == ["reports"] and sender == "reports@example.com"
    assert recipients == ["team@example.com", "lead@example.com"]
    assert msg["Subject"] == "[Team site] Sales: FAILED" and msg["To"] == "team@example.com, lead@example.com"
    body = msg.get_content()
    assert "Status: failed" in body and f"Version: {version['id']}" in body and "boom at factor 1.0" in body
    assert f"version: s/{version['id']}/index.html" in body and "history: s/index.html" in body
    assert "set [site] url for full addresses" in body
    assert msg.get_content_type() == "text/plain"

    # The password comes from the environment at send time: without it, a clear error, logged.
    env.pop(PASSWORD_ENV)
    proc = build(root, "--force", code=EXIT_FAILED, env=env)
    assert len(catalog(root)["versions"]) == 2 and len(smtp.messages) == 1
    expected = f"environment variable {PASSWORD_ENV} is not set (password_env in [notify.email])"
    assert expected in proc.stderr and expected in notify_log(root)
    assert "email to team@example.com, lead@example.com via 127.0.0.1" in proc.stderr
    assert_no_secret(root, proc.stdout, proc.stderr)


def test_notify_test_reaches_every_target_and_names_the_one_that_fails(tmp_path, hooks, smtp):
    hook = hooks()
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    root = project(tmp_path, webhook_toml(hook.url(), fmt="slack") + email_toml(smtp.port),
                   site_url="https://reports.example.com")

    proc = run_cli("notify", project=root, env=env)  # lists, sends nothing
    assert proc.returncode == EXIT_OK and hook.received == [] and smtp.messages == []
    assert f"webhook 1 (http://127.0.0.1:{hook.server.server_address[1]}/…): on failed, degraded, recovered" \
        in proc.stderr

    proc = run_cli("notify", "--test", project=root, env=env)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "test message sent to all 2 target(s)" in proc.stderr
    assert "Test notification: TEST" in hook.bodies[0]["text"]
    assert "<https://reports.example.com/index.html|site>" in hook.bodies[0]["text"]
    assert smtp.messages[0][2]["Subject"] == "[Team site] Test notification: TEST"
    assert not list((root / "reports").glob("*"))  # a test builds nothing

    dead_port = free_port()
    toml = (root / "publish.toml").read_text()
    (root / "publish.toml").write_text(toml + webhook_toml(f"https://127.0.0.1:{dead_port}/{TOKEN}"))
    proc = run_cli("notify", "--test", project=root, env=env)
    assert proc.returncode == EXIT_ENVIRONMENT
    assert f"error: test message not sent to webhook 2 (https://127.0.0.1:{dead_port}/…): " in proc.stderr
    assert len(hook.received) == 2 and len(smtp.messages) == 2  # the others still got theirs
    assert_no_secret(root, proc.stdout, proc.stderr)

    (root / "publish.toml").write_text(toml.split("[[notify.webhooks]]")[0] + toml[toml.index("[reports"):])
    proc = run_cli("notify", "--test", project=root)
    assert proc.returncode == EXIT_USAGE and "publish.toml has no notification targets" in proc.stderr


def test_starttls_upgrades_before_the_login(tmp_path):
    """A server that accepts a login only after STARTTLS, with a certificate the client trusts
    through SSL_CERT_FILE: the login and the mail go over TLS, verified."""
    import ssl

    from aiosmtpd.controller import Controller

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=inbox.authenticate,
                            tls_context=context, require_starttls=True)
    controller.start()
    try:
        root = project(tmp_path / "p", email_toml(controller.port, starttls=True))
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "SSL_CERT_FILE": str(cert)}
        proc = run_cli("notify", "--test", project=root, env=env)
        assert proc.returncode == EXIT_OK, proc.stderr
        assert inbox.logins == ["reports"] and inbox.tls == [True]

        proc = run_cli("notify", "--test", project=root, env={**env, "SSL_CERT_FILE": "/nonexistent"})
        assert proc.returncode == EXIT_ENVIRONMENT and len(inbox.messages) == 1  # an untrusted server gets nothing
        assert "TLS certificate not trusted" in proc.stderr and "attempt" not in proc.stderr  # not retried
        assert_no_secret(root, proc.stdout, proc.stderr)
    finally:
        controller.stop()


def test_config_errors_name_the_key_and_never_repeat_the_address(tmp_path):
    root = project(tmp_path, "\n".join([
        webhook_toml(f"ftp://hooks.example.com/{TOKEN}"),
        webhook_toml("https://hooks.example.com/x", '["failed", "broken"]', fmt="teams"),
        webhook_toml("https:///no-host"),
        webhook_toml("https://hooks.example.com/a|<b>"),
        '[notify.email]\nsmtp_host = "smtp.example.com"\nfrom = "reports"\nto = []\nuser = "reports"\n'
        'password = "plain"\n',
    ]), site_url="file:///srv/site")
    with pytest.raises(ConfigError) as info:
        load_config(root)
    found = info.value.problems
    assert found == [
        "publish.toml: site.url: expected an http:// or https:// address, got scheme 'file'",
        "publish.toml: notify.webhooks.0.url: expected an http:// or https:// address, got scheme 'ftp'",
        "publish.toml: notify.webhooks.1.on: unknown event 'broken' (valid: published, failed, degraded, recovered)",
        "publish.toml: notify.webhooks.1.format: Input should be 'json' or 'slack', got 'teams'",
        "publish.toml: notify.webhooks.2.url: expected an http(s) address with a host name",
        "publish.toml: notify.webhooks.3.url: expected an address without spaces, control characters, quotes, <, >, "
        "|, \\ or backticks",
        "publish.toml: notify.email.from: expected a mail address like name@example.com, got 'reports'",
        "publish.toml: notify.email.to: List should have at least 1 item after validation, not 0, got list",
        "publish.toml: notify.email.password: unknown key (value 'plain')",
    ]
    assert TOKEN not in "\n".join(found)

    # user without password_env (and the reverse) is a config error before any kernel starts
    root = project(tmp_path / "two", '[notify.email]\nsmtp_host = "smtp.example.com"\nfrom = "r@example.com"\n'
                                     'to = ["t@example.com"]\nuser = "reports"\n')
    proc = run_cli("build", project=root)
    assert proc.returncode == EXIT_USAGE
    assert ("error: publish.toml: notify.email: expected both `user` and `password_env` (login) or neither "
            "(no login)") in proc.stderr
    assert not (root / "reports").exists()


@pytest.mark.parametrize("model", [NotifyConfig, WebhookConfig, EmailConfig])
def test_every_notify_setting_is_documented(model):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `[notify]`"):]
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        assert f"`{info.alias or name}`" in section, f"README's [notify] section does not document `{name}`"


@pytest.mark.parametrize(("status", "previous", "kind"), [
    ("ok", None, "published"), ("ok", "ok", "published"), ("ok", "degraded", "recovered"),
    ("ok", "failed", "recovered"), ("degraded", "failed", "degraded"), ("failed", "failed", "failed"),
    ("degraded", "ok", "degraded"),
])
def test_the_event_a_version_is(status, previous, kind):
    assert kind_of(status, previous) == kind
