"""A throwaway Dovecot IMAP server for tests: its own config, users and Maildirs in a temp dir.

Started as a subprocess in the foreground (``-F``) on a free loopback port, plain IMAP with
no TLS, passdb and userdb from a passwd-file; logs go to ``dovecot.log`` in the directory.
As root the login and internal processes run as Debian's ``dovenull``/``dovecot`` users and
mail as ``dovecot``; otherwise everything runs as the current user.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tooling.devstack import free_port

BINARY = Path("/usr/sbin/dovecot")
START_TIMEOUT = 15.0
PASSWORD = "imap-test-password"
USERS = 20


def _config(base: Path, port: int, login_user: str, internal_user: str, group: str) -> str:
    return f"""\
base_dir = {base}/run
state_dir = {base}/state
instance_name = sb-{base.name}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {base}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {group}
first_valid_uid = 1
mail_location = maildir:{base}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    base: Path
    port: int
    uid: int
    gid: int
    process: subprocess.Popen[bytes] | None = None
    users: list[str] = field(default_factory=list)

    @classmethod
    def create(cls) -> Dovecot:
        base = Path(tempfile.mkdtemp(prefix="sb-dovecot-"))
        base.chmod(0o755)  # Dovecot's unprivileged processes read the users file
        if os.geteuid() == 0:
            owner = pwd.getpwnam("dovecot")
            login, internal, group = "dovenull", "dovecot", grp.getgrgid(owner.pw_gid).gr_name
            uid, gid = owner.pw_uid, owner.pw_gid
        else:
            me = pwd.getpwuid(os.getuid())
            login = internal = me.pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            uid, gid = os.getuid(), os.getgid()
        for name in ("run", "state", "mail"):
            (base / name).mkdir()
        os.chown(base / "mail", uid, gid)
        port = free_port()
        (base / "dovecot.conf").write_text(_config(base, port, login, internal, group))
        # Users are written before the start: Dovecot may not notice a passwd-file that
        # changes within the second it was last read.
        names = [f"support-{i}-{uuid.uuid4().hex[:6]}" for i in range(USERS)]
        (base / "users").write_text(
            "".join(
                f"{name}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{base / 'mail' / name}::\n"
                for name in names
            )
        )
        (base / "users").chmod(0o644)
        return cls(base=base, port=port, uid=uid, gid=gid, users=names)

    def start(self) -> None:
        with open(self.base / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                [str(BINARY), "-F", "-c", str(self.base / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot not listening after {START_TIMEOUT}s: {self.log()}")
            time.sleep(0.05)  # polling the port, bounded by the deadline above

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            with contextlib.suppress(OSError):
                parts.append((self.base / name).read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def add_user(self) -> str:
        """A user nobody used yet, with an empty INBOX."""
        if not self.users:
            raise RuntimeError(f"all {USERS} Dovecot test users are taken")
        return self.users.pop()

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[imaplib.IMAP4]:
        """A plain ``imaplib`` session with INBOX selected, for delivering and checking."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(user, PASSWORD)
            client.select("INBOX")
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, raw: bytes) -> int:
        """Deliver ``raw`` into the user's INBOX; returns its UID (Dovecot answers APPENDUID)."""
        with self.session(user) as client:
            status, data = client.append("INBOX", None, None, raw)
            assert status == "OK", data
            answer = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(answer.split("APPENDUID ", 1)[1].split("]")[0].split()[1])

    def flags(self, user: str) -> dict[int, set[str]]:
        """UID -> flags of every message in the user's INBOX."""
        with self.session(user) as client:
            status, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            assert status == "OK", data
        result: dict[int, set[str]] = {}
        for item in data:
            if not isinstance(item, bytes):
                continue
            text = item.decode()
            uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
            flags = text.split("FLAGS (", 1)[1].split(")", 1)[0].split()
            result[uid] = set(flags)
        return result

    def remove_flags(self, user: str, uid: int, flags: str) -> None:
        with self.session(user) as client:
            status, data = client.uid("STORE", str(uid), "-FLAGS.SILENT", f"({flags})")
            assert status == "OK", data


def available() -> bool:
    return BINARY.is_file() and os.access(BINARY, os.X_OK)
