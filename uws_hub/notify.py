"""E-mail notifications through an outbox: queued in the same transaction as the change that
causes them, sent by the service's mailer loop over SMTP, retried with back-off.

A mail failure never blocks or breaks the action that queued it: it is logged, retried (after
`c.UWS.smtp_retry_delay`, then twice as long each time, at most an hour between attempts) and given up after
`c.UWS.smtp_max_attempts`, with the last error kept on the row.

Templates are Jinja2 text files shipped in ``uws_hub/templates/email/<kind>.txt`` (the first line
is ``Subject: ...``); a site overrides any of them by putting a file of the same name in
`c.UWS.email_template_dir`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import jinja2
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .db.models import Notification, User, utcnow
from .periodic import Periodic, Wakeup

log = logging.getLogger("uws_hub.notify")
TEMPLATES = os.path.join(os.path.dirname(__file__), "templates", "email")


class Notifier:
    def __init__(self, settings, db):
        self.settings = settings
        self.db = db
        paths = [p for p in (settings.email_template_dir, TEMPLATES) if p]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(paths),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.sent = 0
        self.failures = 0
        self._wake = Wakeup()
        self._sender = Periodic(
            self.send_due, settings.smtp_poll_interval, "mailer pass", wake=self._wake
        )

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    # ---- queueing (in the caller's transaction) ------------------------------------------------

    def render(self, kind: str, context: dict) -> tuple[str, str]:
        text = self.env.get_template(f"{kind}.txt").render(
            site_name=self.settings.site_name,
            hub_url=(self.settings.public_url or "").rstrip("/"),
            service_name=self.settings.service_name,
            **context,
        )
        first, _, body = text.partition("\n")
        if not first.lower().startswith("subject:"):
            raise ValueError(f"e-mail template {kind}.txt must start with 'Subject: ...'")
        return first.split(":", 1)[1].strip(), body.lstrip("\n")

    def queue(self, session: Session, kind: str, to: User, context: dict) -> Notification | None:
        """Add a message for `to` to the outbox (committed with the caller's change)."""
        if not self.enabled:
            return None
        if not to.email:
            log.info("no e-mail address for %s: %s not sent", to.name, kind)
            return None
        try:
            subject, body = self.render(kind, context)
        except Exception:
            # a broken site template must not break the share: log it for the operators
            log.exception("e-mail template %s.txt failed; %s not sent to %s", kind, kind, to.name)
            return None
        n = Notification(
            kind=kind,
            recipient=to.email,
            subject=subject[:998],
            body=body,
            related={"user": to.name},
            created=utcnow(),
            next_attempt=utcnow(),
        )
        session.add(n)
        # wake the mailer once the change (and this message) is committed, not before
        event.listen(session, "after_commit", self._on_commit, once=True)
        return n

    def _on_commit(self, session) -> None:
        self._wake.set()

    # ---- sending (the service's loop) -----------------------------------------------------------

    def start(self) -> None:
        if self.enabled:
            self._sender.start()

    async def stop(self) -> None:
        await self._sender.stop()

    async def send_due(self) -> int:
        """Send every message that is due; returns how many were sent."""
        with self.db() as session:
            due = session.scalars(
                select(Notification)
                .where(
                    Notification.sent.is_(None),
                    Notification.next_attempt <= utcnow(),
                    Notification.attempts < self.settings.smtp_max_attempts,
                )
                .order_by(Notification.id)
                .limit(50)
            ).all()
            batch = [(n.id, n.recipient, n.subject, n.body) for n in due]
        sent = 0
        for nid, to, subject, body in batch:
            try:
                await asyncio.to_thread(self._send, to, subject, body)
                error = None
            except (OSError, smtplib.SMTPException) as e:
                error = f"{type(e).__name__}: {e}"[:1000]
            with self.db() as session:
                n = session.get(Notification, nid)
                if n is None:
                    continue
                n.attempts += 1
                if error is None:
                    n.sent, n.last_error = utcnow(), None
                    sent += 1
                    self.sent += 1
                else:
                    self.failures += 1
                    n.last_error = error
                    delay = min(self.settings.smtp_retry_delay * 2 ** (n.attempts - 1), 3600)
                    n.next_attempt = utcnow() + dt.timedelta(seconds=delay)
                    log.warning(
                        "e-mail %s to %s failed (attempt %d, next in %.0fs): %s",
                        nid,
                        to,
                        n.attempts,
                        delay,
                        error,
                    )
                session.commit()
        return sent

    def _send(self, to: str, subject: str, body: str) -> None:
        s = self.settings
        msg = EmailMessage()
        msg["From"] = formataddr((s.site_name, s.email_from))
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain=s.email_from.rpartition("@")[2] or None)
        msg.set_content(body)
        cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
        with cls(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout) as smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(msg)
