"""The targets notifications go to: a webhook (JSON or a Slack-compatible body) and SMTP mail.

Each has a redacted ``name`` for logs, the ``on`` list of its config, ``send(event)`` that raises
:class:`Retry` (worth another attempt) or :class:`GiveUp`, and ``redact(text)`` that removes
its secrets from an error text. :mod:`lab2land.notify` decides what to send and retries.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import __version__

if TYPE_CHECKING:
    from .config import EmailConfig, WebhookConfig
    from .notify import Event

TIMEOUT_S = 10.0  # per attempt: a dead target costs a build at most ~3 × this


def redact_url(url: str) -> str:
    """``url`` as logs may show it: scheme, host and port; path, query and login hidden."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{hidden}"


class Retry(Exception):
    """A failure worth another attempt (refused, timed out, 5xx, 429)."""


class GiveUp(Exception):
    """A failure another attempt would repeat (4xx, login refused, missing password)."""


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>): a title or an error must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Webhook:
    """POSTs one JSON body per event to an http(s) address."""

    def __init__(self, config: WebhookConfig, index: int):
        self.config, self.on = config, config.on
        self.name = f"webhook {index + 1} ({redact_url(config.url)})"
        self._secrets = [config.url, urlsplit(config.url).path, urlsplit(config.url).query]

    def body(self, event: Event) -> dict:
        if self.config.format == "json":
            return event.to_json()
        lines = [f"*{_slack_escape(event.headline)}*", *(_slack_escape(x) for x in event.detail_lines()[1:])]
        for name, link in event.links.items():  # a relative path is no link in a chat: shown as text
            absolute = link.startswith(("http://", "https://"))
            lines.append(f"<{_slack_escape(link)}|{name}>" if absolute else f"{name}: `{_slack_escape(link)}`")
        return {"text": "\n".join(lines)}

    def send(self, event: Event) -> None:
        import ssl
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.config.url, data=json.dumps(self.body(event)).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"lab2land/{__version__}"})
        try:
            with _opener().open(request, timeout=TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
            raise (Retry if exc.code >= 500 or exc.code in (408, 429) else GiveUp)(problem) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):  # the same certificate next time
                raise GiveUp(f"TLS certificate not trusted: {reason.verify_message}") from None
            raise Retry(str(reason)) from None

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if len(secret) > 1:
                text = text.replace(secret, "…")
        return text


def _opener():
    """A urllib opener that does not follow redirects: a webhook that moved is an error to fix,
    and a POST must not turn into a request to wherever a ``Location`` points."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    return urllib.request.build_opener(NoRedirect)


class Mailer:
    """Sends one plain-text mail per event through an SMTP server."""

    def __init__(self, config: EmailConfig):
        self.config, self.on = config, config.on
        self.name = f"email to {', '.join(config.to)} via {config.smtp_host}:{config.port}"
        self._password = ""

    def message(self, event: Event):
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        msg = EmailMessage()
        # A title is one line in the config, but a header must never take a line break from it.
        msg["Subject"] = " ".join(f"[{event.site}] {event.headline}".split())
        msg["From"], msg["To"] = self.config.sender, ", ".join(self.config.to)
        msg["Date"], msg["Message-ID"] = formatdate(usegmt=True), make_msgid(domain=self.config.sender.split("@")[-1])
        shown = [f"  {name}: {link}" for name, link in event.links.items()]
        if not all(link.startswith(("http://", "https://")) for link in event.links.values()):
            shown.append("  (paths are relative to the site folder: set [site] url for full addresses)")
        msg.set_content("\n".join([*event.detail_lines(), "", "Links:", *shown, "",
                                   f"-- lab2land {__version__}"]) + "\n")
        return msg

    def send(self, event: Event) -> None:
        import smtplib
        import ssl

        c = self.config
        if c.password_env:
            self._password = os.environ.get(c.password_env, "")
            if not self._password:
                raise GiveUp(f"environment variable {c.password_env} is not set (password_env in [notify.email]); "
                             "export it where the build runs")
        try:
            with smtplib.SMTP(c.smtp_host, c.port, timeout=TIMEOUT_S) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.user:
                    smtp.login(c.user, self._password)
                smtp.send_message(self.message(event))
        except smtplib.SMTPAuthenticationError as exc:
            raise GiveUp(f"login as {c.user!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise GiveUp(f"recipients refused: {', '.join(exc.recipients)}") from None
        except smtplib.SMTPResponseException as exc:
            raise (Retry if 400 <= exc.smtp_code < 500 else GiveUp)(
                f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise GiveUp(f"{exc} (set starttls = false, or user/password_env, to match the server)") from None
        except ssl.SSLCertVerificationError as exc:
            raise GiveUp(f"TLS certificate not trusted: {exc.verify_message}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(str(exc) or type(exc).__name__) from None

    def redact(self, text: str) -> str:
        return text.replace(self._password, "…") if len(self._password) > 1 else text


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
