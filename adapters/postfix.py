"""Postfix configuration files for the core: the reading the sans-I/O core leaves to callers.

`read_file` is the *reader* that ``ClientConfig.from_postconf``/``from_main_cf`` and
:mod:`smtpproto.tables` take to open ``texthash:``, ``regexp:`` and ``pcre:`` tables and
``/file/name`` list items; `load` builds a `ClientConfig` from a Postfix configuration
directory (``main.cf``, and a ``master.cf`` service's ``-o`` overrides)::

    from smtpproto.adapters import postfix
    config = postfix.load("/etc/postfix", service="relay")
"""

from __future__ import annotations

import errno
import os

from smtpproto.config import ClientConfig

__all__ = ["MAX_FILE_BYTES", "load", "read_file"]

MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest configuration or table file `read_file` reads (a bound, not a Postfix limit)."""


def read_file(path: str) -> str:
    """The text of the file at `path` (UTF-8); `OSError` when it cannot be read."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES} bytes", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OSError(errno.EILSEQ, f"not UTF-8 (byte {error.start})", path) from None


def load(
    config_directory: str = "/etc/postfix",
    *,
    service: str | None = None,
    lmtp: bool | None = None,
) -> ClientConfig:
    """The `ClientConfig` of a Postfix installation: ``main.cf``, plus with `service` that
    ``master.cf`` service's ``-o`` overrides (its command decides SMTP or LMTP).

    ``$config_directory`` expands to `config_directory` unless main.cf sets it, as in Postfix.
    """
    main_cf = read_file(os.path.join(config_directory, "main.cf"))
    master_cf = None
    if service is not None:
        master_cf = read_file(os.path.join(config_directory, "master.cf"))
    return ClientConfig.from_main_cf(
        f"config_directory = {config_directory}\n{main_cf}",
        master_cf=master_cf,
        service=service,
        lmtp=lmtp,
        reader=read_file,
    )
