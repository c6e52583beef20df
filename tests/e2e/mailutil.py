"""A real SMTP server for the tests (aiosmtpd) and the inbox it fills."""

from __future__ import annotations

import email
import time

from aiosmtpd.controller import Controller

from hubtest import free_port


class Inbox:
    def __init__(self):
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, to: str, subject_part: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if m["To"] == to and subject_part in m["Subject"]:
                    return m
            time.sleep(0.2)
        raise AssertionError(
            f"no mail to {to} about {subject_part!r}: {[m['Subject'] for m in self.messages]}"
        )


class SmtpServer:
    """aiosmtpd on a fixed port that a test can take down and bring back."""

    def __init__(self, inbox: Inbox):
        self.inbox, self.port, self.ctl = inbox, free_port(), None
        self.up()

    def up(self) -> None:
        self.ctl = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.ctl.start()

    def down(self) -> None:
        if self.ctl is not None:
            self.ctl.stop()
            self.ctl = None
