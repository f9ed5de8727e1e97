"""The command's output: standard output and error behind one lock, a progress line, and the
message file as the engine reads it.

A progress line on a terminal is erased before any other line is written, by whichever
thread writes it, so the two never share a line. A reader that goes away (``... | head``)
stops the output quietly: the delivery has happened, and the exit status still says how.
Every line goes out through `smtpproto.report.printable`: text from a server or from DNS can
neither start a line of its own nor drive the terminal (RP-24).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, BinaryIO

from smtpproto.report import printable

__all__ = ["MessageFile", "Progress", "Terminal"]

_ERASE = "\r\x1b[K"  # back to the first column, then clear to the end of the line


class Terminal:
    """Writes whole lines to standard output and error for every thread of the command."""

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr
        self._lock = threading.Lock()
        self._progress = False
        self._closed: set[int] = set()

    def out(self, text: str) -> None:
        """One line (or several) on standard output, printable."""
        with self._lock:
            self._erase()
            self.write(self._stdout, _lines(text))

    def err(self, text: str) -> None:
        """One line (or several) on standard error, printable."""
        with self._lock:
            self._erase()
            self.write(self._stderr, _lines(text))

    def progress(self, text: str) -> None:
        """Show `text` as the progress line, replacing the previous one."""
        with self._lock:
            self.write(self._stderr, _ERASE + text)
            self._progress = True

    def erase(self) -> None:
        """Remove the progress line, if one is shown."""
        with self._lock:
            self._erase()

    def _erase(self) -> None:
        if self._progress:
            self._progress = False
            self.write(self._stderr, _ERASE)

    def write(self, stream: IO[str], text: str) -> None:
        """Write `text` to `stream` as it is; nothing happens once its reader has left."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        if fd in self._closed:
            return
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            # The reader left. Point the descriptor at /dev/null, so that nothing (not even
            # the interpreter's last flush at exit) writes to the broken pipe again.
            self._closed.add(fd)
            if fd >= 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)


def _lines(text: str) -> str:
    # "\n" alone separates the lines the command writes; every other line break or control
    # character a peer smuggled in is escaped.
    return "".join(printable(line) + "\n" for line in text.split("\n"))


class MessageFile:
    """The message as the engine reads it, once to check and once per server to send;
    `done` and `passes` tell the progress line how far the latest pass has come."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self.size = size
        self.done = 0
        self.passes = 0
        self._fresh = True

    def read(self, size: int = -1, /) -> bytes:
        """At most `size` octets from the file."""
        if self._fresh:
            # The engine seeks back before each pass: the first read after a seek starts one.
            self._fresh = False
            self.passes += 1
            self.done = 0
        data = self._file.read(size)
        self.done += len(data)
        return data

    def seekable(self) -> bool:
        """Always: the engine reads the message again for each server it tries."""
        return True

    def tell(self) -> int:
        """The position in the file."""
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Move in the file (the engine goes back to the start after each pass)."""
        self._fresh = True
        return self._file.seek(offset, whence)


class Progress:
    """A background thread that shows how far the message has been sent, on a terminal only:
    nothing for a second, then one line rewritten twice a second until `stop`."""

    def __init__(self, terminal: Terminal, message: MessageFile) -> None:
        self._terminal = terminal
        self._message = message
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smtpproto-progress", daemon=True)

    def start(self, stream: IO[str] | None = None) -> None:
        """Start showing progress if `stream` (standard error) is a terminal."""
        stream = stream or sys.stderr
        if stream.isatty():
            self._thread.start()

    def stop(self) -> None:
        """Stop, and leave no progress line behind."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        self._terminal.erase()

    def text(self) -> str:
        """The progress line as it reads now."""
        message = self._message
        verb = "checking" if message.passes <= 1 else "sending"
        percent = 100 * message.done // message.size if message.size else 100
        return f"smtpproto: {verb} the message, {percent}% of {_size(message.size)}"

    def _run(self) -> None:
        if self._stopped.wait(1.0):
            return
        while not self._stopped.wait(0.5):
            self._terminal.progress(self.text())


def _size(octets: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if octets >= scale:
            return f"{octets / scale:.1f} {unit}"
    return f"{octets} bytes"
